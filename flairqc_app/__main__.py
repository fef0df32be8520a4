from flairqc_app.cli import main

raise SystemExit(main())
