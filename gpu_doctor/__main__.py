from gpu_doctor.cli import main

raise SystemExit(main())
