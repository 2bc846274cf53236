import { z } from 'zod';

// zod compiles object parsers with new Function() when schemas are built, which the page's CSP (no
// unsafe-eval) refuses: this module is imported first, before any schema exists.
z.config({ jitless: true });
