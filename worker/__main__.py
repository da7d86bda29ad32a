"""``python -m worker``: run a queue worker.

``python -m worker generate ...`` makes images with no Redis; ``python -m worker prefetch``
downloads the public checkpoints into the model cache.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "generate":
        from worker.cli import main as generate_main

        return generate_main(args[1:])
    if args and args[0] == "prefetch":
        from worker.prefetch import main as prefetch_main

        return prefetch_main(args[1:])
    from worker.runner import main as runner_main

    return runner_main(args)


if __name__ == "__main__":
    sys.exit(main())
