// Runs the official `createRealtimeClient` of @asteby/metacore-websocket against a live
// metacore server: discovers the socket through GET /api/realtime/info, subscribes to one
// model, prints {"ready": ...} once the server acknowledged, then the first DATA_EVENT.
// Env: METACORE_HTTP (http://127.0.0.1:<port>), METACORE_TOKEN, METACORE_MODEL.
const { createRealtimeClient } = await import('./node_modules/@asteby/metacore-websocket/dist/realtime.js');

const base = process.env.METACORE_HTTP;
const token = process.env.METACORE_TOKEN;
const model = process.env.METACORE_MODEL;
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

const response = await fetch(`${base}/api/realtime/info`, { headers: { Authorization: `Token ${token}` } });
const info = (await response.json()).data;
const client = createRealtimeClient({ wsUrl: info.ws_url, channel: info.channels[0], getToken: () => token });

const timeout = setTimeout(() => {
  print({ error: 'timeout', status: client.status(), acked: client.serverModels() });
  process.exit(2);
}, 20000);

client.subscribe({ models: [model] }, (event) => {
  if (event.action === 'resync') return;
  print({ event });
  clearTimeout(timeout);
  client.close();
  process.exit(0);
});

const waitForAck = setInterval(() => {
  if (client.serverModels().length > 0) {
    clearInterval(waitForAck);
    print({ ready: client.serverModels(), channel: info.channels[0], ws_url: info.ws_url });
  }
}, 10);
