from callcontrol.cli import main

raise SystemExit(main())
