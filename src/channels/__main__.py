from channels._cli import main

raise SystemExit(main())
