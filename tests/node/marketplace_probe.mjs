// Runs the official `MarketplaceClient` of @asteby/metacore-sdk (dist/client.js, which has no
// imports) against a live metacore server and prints one JSON object with every step's result.
// Env: METACORE_HTTP (http://127.0.0.1:<port>), METACORE_TOKEN, METACORE_ADDON.
const { MarketplaceClient, MarketplaceError } = await import('./node_modules/@asteby/metacore-sdk/dist/client.js');

const token = process.env.METACORE_TOKEN;
const key = process.env.METACORE_ADDON;
const client = new MarketplaceClient({
  baseUrl: `${process.env.METACORE_HTTP}/api/metacore`,
  headers: () => ({ Authorization: `Token ${token}` }),
});

const steps = {};
try {
  steps.catalog = await client.catalog();
  steps.detail = await client.detail(key);
  steps.install = await client.install(key, { settings: { greeting: 'from node' }, selected_tools: ['lookup'] });
  steps.installed = await client.installed();
  steps.disable = await client.disable(key);
  steps.manifestsWhileDisabled = await client.manifests();
  steps.enable = await client.enable(key);
  steps.updateSettings = await client.updateSettings(key, { greeting: 'updated', sla_hours: 8 });
  steps.navigation = await client.navigation();
  steps.manifests = await client.manifests();
  steps.manifestsLite = await client.manifestsLite();
  steps.uninstall = (await client.uninstall(key, true)) ?? null;
  steps.installedAfter = await client.installed();
  try {
    await client.enable(key);
    steps.enableAfterUninstall = 'unexpected success';
  } catch (error) {
    steps.enableAfterUninstall = { name: error.name, status: error.status, isMarketplaceError: error instanceof MarketplaceError };
  }
  process.stdout.write(JSON.stringify(steps));
} catch (error) {
  process.stdout.write(JSON.stringify({ failed: String(error), status: error.status, steps }));
  process.exit(1);
}
