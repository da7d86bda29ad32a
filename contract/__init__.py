"""The contract between the bot and the workers: modes, job spec, events, queue, Redis keys.

Imports neither torch nor aiogram. Import from the module that defines a name
(``contract.spec``, ``contract.events``…): one place to look, no second list to keep in step.
"""
