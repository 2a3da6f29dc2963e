// Runs the official realtime client and the SDK's manifest hot-swap against a live metacore
// server. One socket (`createSocketTransport`, from @asteby/metacore-websocket) carries both:
// `createRealtimeClient` subscribes once per spelling in METACORE_MODELS (comma-separated),
// and `wireHotSwapInvalidation` + `applyHotSwapReload` (from @asteby/metacore-runtime-react)
// listen for ADDON_MANIFEST_CHANGED through a `subscribe(type, handler)` view of the same
// transport (what the SDK's WebSocketProvider gives hosts).
// Prints {"ready": [...]} once the server acknowledged every spelling, then one line
// {"spelling", "event"} per spelling's first data event and {"swap", "removed", "action",
// "versions"} for the first manifest change, then exits.
// Env: METACORE_HTTP, METACORE_TOKEN, METACORE_MODELS.
const { createRealtimeClient, createSocketTransport } = await import(
  './node_modules/@asteby/metacore-websocket/dist/realtime.js');
const { wireHotSwapInvalidation } = await import(
  './node_modules/@asteby/metacore-runtime-react/dist/manifest-hotswap-subscriber.js');
const { applyHotSwapReload } = await import(
  './node_modules/@asteby/metacore-runtime-react/dist/hotswap-reload-policy.js');

const base = process.env.METACORE_HTTP;
const token = process.env.METACORE_TOKEN;
const spellings = process.env.METACORE_MODELS.split(',');
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

const response = await fetch(`${base}/api/realtime/info`, { headers: { Authorization: `Token ${token}` } });
const info = (await response.json()).data;
const transport = createSocketTransport({ wsUrl: info.ws_url, channel: info.channels[0], getToken: () => token });
const client = createRealtimeClient({ transport });
const byType = {
  subscribe: (type, handler) => transport.onFrame((frame) => { if (frame.type === type) handler(frame); }),
};

const pending = new Set([...spellings, 'swap']);
const done = (what) => {
  pending.delete(what);
  if (pending.size === 0) {
    clearTimeout(timeout);
    client.close();
    process.exit(0);
  }
};
const timeout = setTimeout(() => {
  print({ error: 'timeout', pending: [...pending], acked: client.serverModels() });
  process.exit(2);
}, 30000);

for (const spelling of spellings) {
  let seen = false;
  client.subscribe({ models: [spelling] }, (event) => {
    if (event.action === 'resync' || seen) return;
    seen = true;
    print({ spelling, event });
    done(spelling);
  });
}

let versions = {};
wireHotSwapInvalidation(byType, {
  onSwap: async (message, removed) => {
    const action = await applyHotSwapReload(message, { strategy: 'rekey' }, {
      setVersionMap: (update) => { versions = update(versions); },
    });
    print({ swap: message.payload, removed, action, versions });
    done('swap');
  },
});

const waitForAck = setInterval(() => {
  if (client.serverModels().length === spellings.length) {
    clearInterval(waitForAck);
    print({ ready: client.serverModels() });
  }
}, 10);
