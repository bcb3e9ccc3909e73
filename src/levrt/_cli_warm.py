"""A job's driver started ahead of its job: ``python -m levrt._cli_warm``.

It imports what ``lev run --job`` needs (about 0.4 s of a dispatched job's start on a 2-CPU
machine; not Temporal's client, which a job whose runs are spread imports as it starts its
first: that would double the time a driver takes to be ready), then waits for one line on
stdin, a JSON object: ``argv`` (``lev``'s arguments), ``env`` (variables to set: the job's
token, the server, ...) and ``path`` (the package's folders, put where ``PYTHONPATH`` would
have put them). From there it is ``lev run`` as if started with that environment. End of
input (the agent discarded it, or is gone): it exits.
"""

from __future__ import annotations

import importlib
import json
import os
import sys


def main() -> None:
    import httpcore  # noqa: F401  (what a run imports on its way)

    import levrt._cli
    import levrt._debug  # noqa: F401
    import levrt.executors.docker  # noqa: F401
    import levrt.executors.process  # noqa: F401
    from levrt.client._client import _tls

    _tls()  # the CA certificates, loaded once per process
    parser = levrt._cli.build_parser()

    line = sys.stdin.buffer.readline()
    if not line:
        return
    order = json.loads(line)
    # As a cold `lev run`: stdin is /dev/null, nothing left of the agent's pipe.
    os.dup2(os.open(os.devnull, os.O_RDONLY), sys.stdin.fileno())
    os.environ.update(order["env"])
    sys.path[1:1] = order["path"]  # after the working directory, as PYTHONPATH's would be
    importlib.invalidate_caches()
    sys.argv = ["lev", *order["argv"]]
    levrt._cli.main(parser)


if __name__ == "__main__":
    main()
