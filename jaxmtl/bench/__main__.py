from jaxmtl.bench.cli import main

raise SystemExit(main())
