// Drives the real @placeos/ts-client library headless, through its public API only.
//
// A line protocol on stdin/stdout so a Python test can script a front end step by step:
// each request line is {"id", "op", ...args}; each reply is {"id", "ok", "result"|"error"};
// pushes are {"event": "value"|"debug"|"connected", ...}. The library is written for
// browsers: the few globals it reads (window, location, localStorage, document,
// navigator, WebSocket) are supplied here, as a browser would, before it is loaded.
import { createInterface } from 'node:readline';
import websocket from 'websocket';

const PAGE = 'http://panel.test/';
// The library's options besides the server: a token in a header, no login page.
const OPTIONS = {
    token_header: true,
    handle_login: false,
    redirect_uri: `${PAGE}oauth-resp.html`,
    auth_uri: '/auth/oauth/authorize',
    token_uri: '/auth/token',
    scope: 'public',
};

function memoryStorage() {
    const items = new Map();
    return {
        getItem: (key) => (items.has(key) ? items.get(key) : null),
        setItem: (key, value) => items.set(key, String(value)),
        removeItem: (key) => items.delete(key),
        key: (index) => [...items.keys()][index] ?? null,
        clear: () => items.clear(),
        get length() {
            return items.size;
        },
    };
}

globalThis.window = globalThis;
globalThis.localStorage = memoryStorage();
globalThis.sessionStorage = memoryStorage();
globalThis.document = { cookie: '' };
globalThis.location = {
    protocol: 'http:',
    host: 'panel.test',
    hostname: 'panel.test',
    origin: 'http://panel.test',
    href: PAGE,
    pathname: '/',
    hash: '',
    search: '',
    assign: () => undefined,
    reload: () => emit({ event: 'reload' }),
};
if (!globalThis.navigator) {
    Object.defineProperty(globalThis, 'navigator', { value: { userAgent: 'node' } });
}
globalThis.WebSocket = websocket.w3cwebsocket;

// The "module" entry bundlers use: the package's "main" is CommonJS under "type": "module".
const place = await import('@placeos/ts-client/dist/index.es.js');
const { lastValueFrom } = await import('rxjs');

function emit(message) {
    process.stdout.write(JSON.stringify(message) + '\n');
}

// A rejected request inside the library's own retry timers must not end the process.
process.on('unhandledRejection', (reason) => emit({ event: 'unhandled', reason: describe(reason) }));

function describe(error) {
    if (error && typeof error === 'object' && 'code' in error) {
        return { code: error.code, msg: error.msg };
    }
    if (error && typeof error === 'object' && 'status' in error) {
        return { status: error.status };
    }
    return { message: String(error) };
}

function until(check, timeout_ms = 10000) {
    return new Promise((resolve, reject) => {
        const started = Date.now();
        const poll = () => {
            if (check()) return resolve();
            if (Date.now() - started > timeout_ms) return reject(new Error('timed out'));
            setTimeout(poll, 20);
        };
        poll();
    });
}

// The library opens its websocket with the first request it sends. A bind that is that
// first request races the library's own re-bind, which it schedules 100 ms after the
// socket opens for every binding still pending: when the server's answer to the bind
// comes later than that, both count it and the binding's count ends at 2, so the next
// unbind() only decrements it and never reaches the server. A front end avoids the
// race by opening the socket before it binds: here, with an `ignore` of a system that
// does not exist (answered "system not found", changing nothing), then waiting until
// the library reports the socket connected.
async function openSocket() {
    await place.ignore({ sys: 'sys-none', mod: 'None', index: 1, name: '' }).catch(() => null);
    await until(() => place.is_connected());
}

// Following a room's servers, as a front end built on the library can: ask any server it
// knows which servers serve the system (GET /api/systems/{sys}/servers, the controller
// first), point the library at the first that answers with setup(), and do it again each
// time the library's socket drops. The library then reconnects there and binds again.
const following = { sys: null, known: [], headers: {}, moving: false };

async function discover(base) {
    const response = await fetch(`${base}/api/systems/${encodeURIComponent(following.sys)}/servers`, {
        headers: following.headers,
        signal: AbortSignal.timeout(2000),
    });
    if (!response.ok) throw new Error(`${base}: HTTP ${response.status}`);
    const answer = await response.json();
    const urls = answer.servers.map((server) => server.url);
    following.known = [...new Set([...urls, ...following.known])];
    return answer;
}

// The first server, in the answer's order, that answers for itself; else the one that answered.
async function chooseServer() {
    for (const base of following.known) {
        let answer;
        try {
            answer = await discover(base);
        } catch {
            continue;
        }
        for (const server of answer.servers) {
            if (server.url === base) return base;
            try {
                await discover(server.url);
                return server.url;
            } catch {
                continue;
            }
        }
        return base;
    }
    return null;
}

async function moveTo(base) {
    const { host, protocol } = new URL(base);
    if (host === place.host()) return;
    await place.setup({ ...OPTIONS, host, secure: protocol === 'https:' });
    emit({ event: 'moved', host });
}

async function followAgain() {
    if (following.moving) return;
    following.moving = true;
    try {
        for (;;) {
            const base = await chooseServer();
            if (base) return await moveTo(base);
            await new Promise((resolve) => setTimeout(resolve, 500));
        }
    } finally {
        following.moving = false;
    }
}

const bindings = new Map();
const REST = [
    'querySystems',
    'showSystem',
    'executeOnSystem',
    'systemModuleState',
    'lookupSystemModuleState',
    'functionList',
];

function variable({ sys, mod, index, name }) {
    return place.getSystem(sys).module(mod, index).binding(name);
}

const operations = {
    // With ``api_key``, the page is opened as a kiosk is: ``…/#x-api-key=KEY``.
    async setup({ host, secure, token, api_key, version }) {
        if (api_key) location.hash = `#x-api-key=${encodeURIComponent(api_key)}`;
        place.status().subscribe((connected) => emit({ event: 'connected', connected }));
        place.debug_events.subscribe((line) => emit({ event: 'debug', ...line }));
        await place.setup({ ...OPTIONS, host, secure, version });
        if (!api_key) place.setToken(token);
        await openSocket();
        return place.authority();
    },
    // Set up at the server that serves ``sys`` now, found from ``servers`` (base URLs),
    // and follow it from then on (see followAgain).
    async follow({ sys, servers, api_key }) {
        location.hash = `#x-api-key=${encodeURIComponent(api_key)}`;
        Object.assign(following, { sys, known: servers, headers: { 'X-API-Key': api_key } });
        const base = await chooseServer();
        if (!base) throw new Error('no server answers');
        await moveTo(base);
        place.status().subscribe((connected) => {
            emit({ event: 'connected', connected });
            if (!connected) followAgain();
        });
        await openSocket();
        return place.host();
    },
    async bind(target) {
        const binding = variable(target);
        const key = `${target.sys}|${target.mod}_${target.index}|${target.name}`;
        if (!bindings.has(key)) {
            bindings.set(
                key,
                binding.listen().subscribe((value) => {
                    if (value !== undefined) emit({ event: 'value', key, value });
                }),
            );
        }
        binding.bind();
        await until(() => binding.count > 0);
        return key;
    },
    async unbind(target) {
        const binding = variable(target);
        binding.unbind();
        await until(() => binding.count === 0);
        return binding.count;
    },
    async execute({ sys, mod, index, name, args }) {
        return place.getSystem(sys).module(mod, index).execute(name, args);
    },
    async debug({ sys, mod, index }) {
        return place.debug({ sys, mod, index, name: '' });
    },
    async ignore({ sys, mod, index }) {
        return place.ignore({ sys, mod, index, name: '' });
    },
    async rest({ fn, args }) {
        if (!REST.includes(fn)) throw new Error(`not a REST function under test: ${fn}`);
        return lastValueFrom(place[fn](...args));
    },
    // The headers of the library's last response from ``path`` (its responseHeaders).
    async headers({ path }) {
        return place.responseHeaders(`${place.apiEndpoint()}${path}`);
    },
    // What moduleTypes / moduleCount send (4.7.7 does not export them): the library's
    // own authenticated GET under its API endpoint.
    async get({ path }) {
        return lastValueFrom(place.get(`${place.apiEndpoint()}${path}`));
    },
    // ``count`` calls at once over the one websocket; distinct arguments, so that the
    // library does not merge identical requests into one.
    async many({ sys, mod, index, name, count }) {
        const calls = [];
        for (let i = 0; i < count; i++) {
            calls.push(place.execute({ sys, mod, index, name, args: [i] }));
        }
        const settled = await Promise.allSettled(calls);
        const values = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value);
        const errors = settled.filter((s) => s.status === 'rejected').map((s) => describe(s.reason));
        return { values, errors };
    },
};

const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
    let request;
    try {
        request = JSON.parse(line);
    } catch {
        return emit({ event: 'bad-line', line });
    }
    const { id, op, ...args } = request;
    try {
        const result = await operations[op](args);
        emit({ id, ok: true, result: result === undefined ? null : result });
    } catch (error) {
        emit({ id, ok: false, error: describe(error) });
    }
});
lines.on('close', () => process.exit(0));
