// Resolve hook for filter_probe.mjs: inside @asteby/metacore-runtime-react's dist, `react` and
// the network/UI modules resolve to runtime-stubs/; everything else (the filter engine itself,
// column-visibility.js) is the published code, loaded with `.js` appended where it omits it.
const STUBBED = new Set(['./api-context', './dynamic-columns', './use-debounced-value', './use-facet-loaders']);

export async function resolve(specifier, context, nextResolve) {
  const fromRuntime = context.parentURL?.includes('/@asteby/metacore-runtime-react/dist/');
  if (specifier === 'react') return { url: new URL('./react.mjs', import.meta.url).href, shortCircuit: true };
  if (fromRuntime && STUBBED.has(specifier)) return { url: new URL('./network.mjs', import.meta.url).href, shortCircuit: true };
  if (fromRuntime && specifier.startsWith('./') && !specifier.endsWith('.js')) return nextResolve(`${specifier}.js`, context);
  return nextResolve(specifier, context);
}
