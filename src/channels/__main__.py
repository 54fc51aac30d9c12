from channels._cli.main import main

raise SystemExit(main())
