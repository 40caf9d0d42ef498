"""modelwiz core: GPU discovery, planning, Hub, model repository, launch. Never imports Textual.

Keep this file free of imports: `import wizard.gpus` must stay cheap.
"""

__version__ = "0.1.0"
