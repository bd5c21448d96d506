"""``python -m modelport``: the ``modelport`` command."""

from modelport.cli.main import main

raise SystemExit(main())
