// A Node web app (node:http; Express would do the same with its router) that calls an
// OpenAI-compatible provider through fb.fetch: every request is guarded by the sidecar's
// breaker, so when the provider dies the app answers 503 at once instead of waiting on it.
// Settings: FUSEBOX_SOCKET, PROVIDER_URL, PORT.
import http from 'node:http';
import { BreakerOpen, Fusebox } from '../../clients/node/index.js';

const fb = new Fusebox();
const provider = process.env.PROVIDER_URL ?? 'http://127.0.0.1:8000/v1';

export const server = http.createServer(async (request, response) => {
  if (request.method !== 'POST' || request.url !== '/ask') { response.writeHead(404).end(); return; }
  try {
    const answer = await fb.fetch('openai', `${provider}/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] }),
    });
    const body = await answer.text();
    response.writeHead(answer.ok ? 200 : 502, { 'content-type': 'application/json' }).end(body);
  } catch (error) {
    if (error instanceof BreakerOpen) {
      response.writeHead(503, { 'retry-after': String(Math.ceil((error.retryInMs ?? 1000) / 1000)) }).end('provider unavailable');
      return;
    }
    response.writeHead(502).end(String(error));
  }
});

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
}
