from mltui.cli.main import main

raise SystemExit(main())
