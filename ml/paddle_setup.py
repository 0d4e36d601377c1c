"""Import Paddle with this library's CPU settings; import paddle from here. KMP_BLOCKTIME=0 stops OpenMP
threads spinning after each kernel, slowing the next, and only works before paddle is first imported."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("KMP_BLOCKTIME", "0")

# Paddle warns at import that ccache (for compiling custom C++ operators) is missing; this library
# compiles none, and the line would greet every command and server start.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
    import paddle

paddle.set_device("cpu")
# Paddle replaces the SIGTERM/SIGINT handlers with ones that abort and print a C++ trace; a server
# (uvicorn's graceful shutdown) or a CLI (KeyboardInterrupt) must keep Python's own.
paddle.disable_signal_handler()
