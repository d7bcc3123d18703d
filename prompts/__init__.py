"""The prompt files, installed as the package `assistant.prompt_files` (see pyproject.toml) and read by `assistant.answer.prompts`."""
