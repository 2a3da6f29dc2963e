// `node --import ./register-extensionless.mjs`: lets Node load the published @asteby dist
// files, whose relative imports omit the `.js` extension (see extensionless-hooks.mjs).
import { register } from 'node:module';

register('./extensionless-hooks.mjs', import.meta.url);
