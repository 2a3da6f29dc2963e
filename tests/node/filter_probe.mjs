// Runs the official React runtime's filter engine (`useDynamicFilters` from
// @asteby/metacore-runtime-react, the serialisation DynamicTable and DynamicKanban send to the
// list endpoint) on scenarios read from stdin, and prints the query parameters it builds.
// stdin: {"metadata": <TableMetadata from /api/metadata/table/...>, "scenarios": [
//   {"name", "search"?, "defaultFilters"?, "filters": {"<key>": ["value", ...]}}]}
// stdout: [{"name", "params": {...}}]
import { register } from 'node:module';

register('./runtime-stubs/hooks.mjs', import.meta.url);
const { render } = await import('./runtime-stubs/react.mjs');
const { useDynamicFilters } = await import('./node_modules/@asteby/metacore-runtime-react/dist/use-dynamic-filters.js');

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { metadata, scenarios } = JSON.parse(input);

const out = scenarios.map((scenario) => {
  const handle = render(() => useDynamicFilters(metadata, { defaultFilters: scenario.defaultFilters }));
  for (const [key, values] of Object.entries(scenario.filters ?? {})) handle.result.handleDynamicFilterChange(key, values);
  if (scenario.search) handle.result.setGlobalFilter(scenario.search);
  return { name: scenario.name, params: handle.rerender().filterParams };
});
process.stdout.write(JSON.stringify(out));
