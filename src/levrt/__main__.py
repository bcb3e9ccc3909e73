"""``python -m levrt``: the ``lev`` command, for where its script is not on ``PATH``."""

from levrt._cli import main

main()
