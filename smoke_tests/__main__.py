from smoke_tests.runner import main

raise SystemExit(main())
