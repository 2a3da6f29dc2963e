// Stand-ins for the runtime modules `use-dynamic-filters.js` imports that reach the network or
// render UI: no API (option prefetch is an effect, never run) and no facet loaders (text
// filters stay plain text filters, whose value is `ILIKE:<text>` as the column filter control
// emits it). DATE_CELL_TYPES is copied from dist/dynamic-columns.js.
export const useApi = () => ({ get: async () => ({ data: { success: true, data: [] } }) });
export const DATE_CELL_TYPES = ['date', 'datetime', 'timestamp', 'timestamptz'];
export const useDebouncedValue = (value) => value;
export const useFacetLoaders = () => ({ getFacetLoader: () => null, prefetchFacets: () => {}, facetOptions: new Map() });
export const isLongTextColumn = () => false;
