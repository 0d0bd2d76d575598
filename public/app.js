// Causerie chat page: log in over REST, then chat over one WebSocket.
//
// The wire protocol (routes, frames, close codes) is docs/protocol.md. Everything that comes from the
// network reaches the DOM through textContent, never as markup. Class names are written out in full
// because Tailwind builds app.css from the literal strings in this file and in index.html.

const TOKEN_KEY = 'causerie.token';
const USER_KEY = 'causerie.user';

// Reconnection: exponential backoff with jitter, from about 500 ms up to 15 s.
const BACKOFF_START_MS = 500;
const BACKOFF_CAP_MS = 15000;
// After 1001 (server shutting down) the new server is usually up soon: a short random delay spreads
// the clients that all reconnect at once.
const SHUTDOWN_DELAY_MIN_MS = 250;
const SHUTDOWN_DELAY_SPREAD_MS = 1500;
// A connection that stayed open this long resets the backoff; a server that accepts and then drops
// every connection at once keeps backing off instead of being hammered every 500 ms.
const STABLE_CONNECTION_MS = 10000;
// The list keeps the latest lines only, so a tab left open for days stays light.
const MAX_LINES = 1000;
// How close to the bottom (in pixels) still counts as "at the bottom" for auto-scroll.
const BOTTOM_SLACK_PX = 48;

const SESSION_ENDED = 'Your session has ended. Please log in again.';

const LINE_OTHER = 'msg flex max-w-[85%] flex-col items-start self-start';
const LINE_OWN = 'msg flex max-w-[85%] flex-col items-end self-end';
const BUBBLE_OTHER = 'msg-bubble max-w-full rounded-2xl rounded-bl-sm bg-white px-3 py-2 text-slate-900 shadow-sm ring-1 ring-slate-200';
const BUBBLE_OWN = 'msg-bubble max-w-full rounded-2xl rounded-br-sm bg-indigo-600 px-3 py-2 text-white shadow-sm';
const META = 'flex items-baseline gap-2 text-xs';
const AUTHOR_OTHER = 'msg-author font-semibold text-indigo-700';
const AUTHOR_OWN = 'msg-author font-semibold text-indigo-100';
const TIME_OTHER = 'msg-time tabular-nums text-slate-600';
const TIME_OWN = 'msg-time tabular-nums text-indigo-100';
const TEXT = 'msg-text mt-0.5 whitespace-pre-wrap wrap-anywhere';
const ERROR_TEXT_OTHER = 'msg-error mt-1 text-xs font-medium text-red-700';
const ERROR_TEXT_OWN = 'msg-error mt-1 text-right text-xs font-medium text-red-700';
const SYSTEM_INFO = 'msg-system self-center rounded-full bg-slate-200 px-3 py-0.5 text-center text-xs text-slate-700';
const SYSTEM_ERROR = 'msg-system self-center rounded-lg bg-red-50 px-3 py-1 text-center text-xs font-medium text-red-800 ring-1 ring-red-200';

const els = {
  auth: document.getElementById('auth'),
  authForm: document.getElementById('auth-form'),
  email: document.getElementById('email'),
  password: document.getElementById('password'),
  name: document.getElementById('name'),
  login: document.getElementById('login-button'),
  register: document.getElementById('register-button'),
  authError: document.getElementById('auth-error'),
  chat: document.getElementById('chat'),
  me: document.getElementById('me'),
  status: document.getElementById('status'),
  messages: document.getElementById('messages'),
  messageForm: document.getElementById('message-form'),
  input: document.getElementById('message-input'),
  send: document.getElementById('send-button'),
  logout: document.getElementById('logout-button'),
};

const state = {
  token: null,
  user: null, // {id, name}
  // session grows at every log in and log out, so that answers and timers of an old session are dropped.
  session: 0,
  ws: null,
  dropped: false, // a connection was lost and none is open yet: the status says "reconnecting"
  attempt: 0, // failed attempts in a row, for the backoff
  timer: 0,
  pending: new Map(), // client id -> line waiting for its ack
  shown: new Set(), // server message ids on screen, so a replay does not show a message twice
  clientSeq: 0,
};

// ---- storage ------------------------------------------------------------------------------------

function loadSaved() {
  try {
    const token = localStorage.getItem(TOKEN_KEY);
    const user = JSON.parse(localStorage.getItem(USER_KEY) || 'null');
    return { token, user };
  } catch {
    return { token: null, user: null };
  }
}

function save() {
  try {
    localStorage.setItem(TOKEN_KEY, state.token);
    localStorage.setItem(USER_KEY, JSON.stringify(state.user));
  } catch {
    // Storage may be disabled (private mode): the session then lasts as long as the tab.
  }
}

function forgetSaved() {
  try {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  } catch {
    // Nothing was stored.
  }
}

function normaliseUser(user, email = '') {
  const u = user && typeof user === 'object' ? user : {};
  let name = typeof u.name === 'string' ? u.name : '';
  if (!name) name = (typeof u.email === 'string' ? u.email : email).split('@')[0];
  return { id: u.id ?? null, name };
}

// ---- REST ---------------------------------------------------------------------------------------

// api calls a JSON route. It resolves with the status and the parsed body (null when there is none)
// and rejects only when the server cannot be reached.
async function api(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  return { status: res.status, ok: res.ok, data };
}

// checkToken asks GET /api/me whether the token still holds: 'ok', 'unauthorized', or 'unknown' when
// the server cannot be reached.
async function checkToken() {
  const { token, session } = state;
  try {
    const res = await api('GET', '/api/me', undefined, token);
    if (res.status === 401) return 'unauthorized';
    if (res.ok && res.data && session === state.session) {
      state.user = normaliseUser(res.data);
      save();
      showMe();
    }
    return 'ok';
  } catch {
    return 'unknown';
  }
}

function authErrorText(res) {
  const serverMessage = res.data && res.data.error && typeof res.data.error.message === 'string'
    ? res.data.error.message
    : '';
  if (res.status === 401) return 'Wrong e-mail or password';
  if (res.status === 409) return 'This e-mail is already registered';
  if (serverMessage) return serverMessage;
  return `Something went wrong (HTTP ${res.status}). Please try again.`;
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const mode = event.submitter && event.submitter.value === 'register' ? 'register' : 'login';
  const email = els.email.value.trim();
  const body = { email, password: els.password.value };
  if (mode === 'register') {
    const name = els.name.value.trim();
    if (name) body.name = name;
  }
  setAuthBusy(true);
  showAuthError('');
  try {
    const res = await api('POST', `/api/${mode}`, body);
    if (res.ok && res.data && typeof res.data.token === 'string' && res.data.token) {
      startSession(res.data.token, normaliseUser(res.data.user, email));
      return;
    }
    showAuthError(authErrorText(res));
  } catch {
    showAuthError('Cannot reach the server. Check your connection and try again.');
  } finally {
    setAuthBusy(false);
  }
}

function setAuthBusy(busy) {
  els.login.disabled = busy;
  els.register.disabled = busy;
  els.authForm.setAttribute('aria-busy', String(busy));
}

// ---- views --------------------------------------------------------------------------------------

function showAuthError(text) {
  els.authError.textContent = text;
}

function showAuth(message) {
  els.chat.hidden = true;
  els.auth.hidden = false;
  showAuthError(message || '');
  els.email.focus();
}

function showChat() {
  els.auth.hidden = true;
  els.chat.hidden = false;
  showMe();
  els.input.focus();
}

function showMe() {
  els.me.textContent = state.user ? state.user.name : '';
}

function setStatus(word) {
  els.status.textContent = word;
  els.status.dataset.state = word;
  const open = word === 'connected';
  els.send.disabled = !open;
  if (open) els.input.placeholder = 'Write a message…';
  else els.input.placeholder = word === 'disconnected' ? 'Not connected' : 'Waiting for the connection…';
}

// ---- session ------------------------------------------------------------------------------------

function startSession(token, user) {
  state.session += 1;
  state.token = token;
  state.user = user;
  state.attempt = 0;
  state.dropped = false;
  save();
  els.password.value = '';
  clearLines();
  showChat();
  connect();
}

// endSession closes the socket with 1000, forgets the token and shows the form, with message in the
// error area when there is one.
function endSession(message) {
  state.session += 1;
  stopSocket();
  forgetSaved();
  state.token = null;
  state.user = null;
  clearLines();
  setStatus('disconnected');
  showAuth(message);
}

function clearLines() {
  els.messages.replaceChildren();
  state.pending.clear();
  state.shown.clear();
}

// ---- WebSocket ----------------------------------------------------------------------------------

function connect() {
  clearTimeout(state.timer);
  state.timer = 0;
  if (!state.token || state.ws) return;
  setStatus(state.dropped ? 'reconnecting' : 'connecting');
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  let openedAt = 0;
  ws.onopen = () => {
    if (ws !== state.ws) return;
    openedAt = Date.now();
    state.dropped = false;
    setStatus('connected');
    systemLine('Connected');
  };
  ws.onmessage = (event) => {
    if (ws === state.ws) onFrame(event.data);
  };
  ws.onerror = () => {
    // A close event always follows; it decides what to do.
    if (ws === state.ws) console.info('Causerie: WebSocket error');
  };
  ws.onclose = (event) => {
    if (ws === state.ws) onClose(event, openedAt);
  };
}

// stopSocket ends the current connection on purpose (log out): no close handler runs, so nothing
// reconnects.
function stopSocket() {
  clearTimeout(state.timer);
  state.timer = 0;
  const ws = state.ws;
  state.ws = null;
  if (!ws) return;
  ws.onmessage = null;
  ws.onerror = null;
  ws.onclose = null;
  if (ws.readyState === WebSocket.CONNECTING) {
    // Closing a socket that is still connecting makes the browser log an error: close it once open.
    ws.onopen = () => ws.close(1000, 'log out');
  } else {
    ws.onopen = null;
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'log out');
  }
}

async function onClose(event, openedAt) {
  state.ws = null;
  const session = state.session;
  const code = event.code;
  failPending('Not confirmed: the connection was lost. It may not have been sent.');

  if (openedAt) {
    console.info(`Causerie: disconnected (code ${code}${event.reason ? `, ${event.reason}` : ''})`);
    systemLine(`Disconnected (code ${code})`);
    if (Date.now() - openedAt >= STABLE_CONNECTION_MS) state.attempt = 0;
  } else if (!state.dropped) {
    systemLine('Cannot connect to the chat server. Retrying…');
  }

  if (code === 1003 || code === 1009) {
    // The server refused what this page sent; sending it again would fail the same way.
    setStatus('disconnected');
    const what = code === 1003 ? 'a binary frame' : 'a frame over 64 KiB';
    systemLine(`The server closed the connection because this page sent ${what}. Reload the page to reconnect.`, true);
    return;
  }

  state.dropped = true;
  setStatus('reconnecting');
  // A close can mean that the token expired: ask before trying again, so an expired session goes back
  // to the form instead of looping.
  const verdict = await checkToken();
  if (session !== state.session) return;
  if (verdict === 'unauthorized') {
    endSession(SESSION_ENDED);
    return;
  }
  const delay = code === 1001
    ? SHUTDOWN_DELAY_MIN_MS + Math.random() * SHUTDOWN_DELAY_SPREAD_MS
    : backoffDelay();
  state.timer = setTimeout(connect, delay);
}

// backoffDelay doubles from BACKOFF_START_MS up to BACKOFF_CAP_MS at each failure in a row, with a
// random factor of 0.5 to 1.5 so that clients dropped together do not come back together.
function backoffDelay() {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** state.attempt);
  state.attempt = Math.min(state.attempt + 1, 20);
  return Math.min(BACKOFF_CAP_MS, base * (0.5 + Math.random()));
}

function onFrame(data) {
  if (typeof data !== 'string') return;
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return;
  }
  if (!frame || typeof frame !== 'object') return;
  switch (frame.type) {
    case 'welcome':
      onWelcome(frame);
      break;
    case 'message':
      addMessage(frame);
      break;
    case 'ack':
      onAck(frame);
      break;
    case 'error':
      onError(frame);
      break;
    default:
      // pong, and frames of later versions of the protocol.
      break;
  }
}

function onWelcome(frame) {
  if (frame.user && typeof frame.user === 'object') {
    const name = typeof frame.user.name === 'string' && frame.user.name ? frame.user.name : state.user && state.user.name;
    state.user = { id: frame.user.id ?? (state.user && state.user.id), name: name || '' };
    save();
  }
  // Show the chat if it is not shown yet; on a reconnect, leave the focus where the user put it.
  if (els.chat.hidden) showChat();
  else showMe();
}

function onAck(frame) {
  const message = frame.message && typeof frame.message === 'object' ? frame.message : null;
  const line = typeof frame.id === 'string' ? state.pending.get(frame.id) : undefined;
  if (!line) {
    if (message) addMessage(message);
    return;
  }
  state.pending.delete(frame.id);
  line.classList.remove('pending');
  if (!message) return;
  const id = messageId(message.id);
  if (id !== null && state.shown.has(id)) {
    line.remove(); // already on screen (a replay came first)
    return;
  }
  if (typeof message.text === 'string') line.querySelector('.msg-text').textContent = message.text;
  markDelivered(line, id, message.at);
}

function onError(frame) {
  const text = typeof frame.message === 'string' && frame.message
    ? frame.message
    : `The server refused a frame (${typeof frame.code === 'string' ? frame.code : 'error'})`;
  const line = typeof frame.id === 'string' ? state.pending.get(frame.id) : undefined;
  if (line) {
    state.pending.delete(frame.id);
    markFailed(line, `Not sent: ${text}`);
    return;
  }
  systemLine(text, true);
}

// ---- sending ------------------------------------------------------------------------------------

function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID exists only in secure contexts (https, localhost).
  state.clientSeq += 1;
  return `c-${Date.now().toString(36)}-${state.clientSeq}-${Math.random().toString(36).slice(2, 10)}`;
}

function onSend(event) {
  event.preventDefault();
  const text = els.input.value;
  els.input.focus();
  if (text.trim() === '') return;
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const id = newClientId();
  const line = createLine(state.user ? state.user.name : '', text, true);
  line.classList.add('pending');
  line.dataset.clientId = id;
  try {
    ws.send(JSON.stringify({ type: 'message', text, id }));
  } catch {
    markFailed(line, 'Not sent: the connection is closed.');
    appendLine(line, true);
    return;
  }
  state.pending.set(id, line);
  appendLine(line, true);
  els.input.value = '';
}

// ---- message list -------------------------------------------------------------------------------

// messageId returns the server's numeric message id, or null when v is not one.
function messageId(v) {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) ? n : null;
}

function isOwn(message) {
  const from = message.from;
  if (!from || typeof from !== 'object' || from.id == null || !state.user || state.user.id == null) return false;
  return String(from.id) === String(state.user.id);
}

function addMessage(message) {
  const id = messageId(message.id);
  if (id !== null && state.shown.has(id)) return;
  const from = message.from && typeof message.from === 'object' ? message.from : {};
  const author = typeof from.name === 'string' ? from.name : '';
  const text = typeof message.text === 'string' ? message.text : '';
  const line = createLine(author, text, isOwn(message));
  markDelivered(line, id, message.at);
  appendLine(line, false);
}

function createLine(author, text, own) {
  const line = document.createElement('div');
  line.className = own ? LINE_OWN : LINE_OTHER;
  if (own) line.dataset.own = 'true';

  const bubble = document.createElement('div');
  bubble.className = own ? BUBBLE_OWN : BUBBLE_OTHER;

  const meta = document.createElement('div');
  meta.className = META;
  const who = document.createElement('span');
  who.className = own ? AUTHOR_OWN : AUTHOR_OTHER;
  who.textContent = author || 'unknown';
  const time = document.createElement('time');
  time.className = own ? TIME_OWN : TIME_OTHER;
  meta.append(who, time);

  const body = document.createElement('p');
  body.className = TEXT;
  body.textContent = text;

  bubble.append(meta, body);
  line.append(bubble);
  return line;
}

function markDelivered(line, id, at) {
  if (id !== null) {
    line.dataset.id = String(id);
    state.shown.add(id);
  }
  const time = line.querySelector('.msg-time');
  const date = typeof at === 'string' ? new Date(at) : null;
  if (!time || !date || Number.isNaN(date.getTime())) return;
  time.dateTime = at;
  time.title = date.toLocaleString();
  time.textContent = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function markFailed(line, text) {
  line.classList.remove('pending');
  line.classList.add('failed');
  let note = line.querySelector('.msg-error');
  if (!note) {
    note = document.createElement('p');
    note.className = line.dataset.own === 'true' ? ERROR_TEXT_OWN : ERROR_TEXT_OTHER;
    line.append(note);
  }
  note.textContent = text;
}

function failPending(text) {
  for (const line of state.pending.values()) markFailed(line, text);
  state.pending.clear();
}

function systemLine(text, isError = false) {
  const line = document.createElement('p');
  line.className = isError ? SYSTEM_ERROR : SYSTEM_INFO;
  line.textContent = text;
  appendLine(line, false);
}

// appendLine adds a line at the bottom and scrolls with it when the reader was already at the bottom
// (or force is set: one's own message).
function appendLine(line, force) {
  const list = els.messages;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight <= BOTTOM_SLACK_PX;
  list.append(line);
  while (list.childElementCount > MAX_LINES) list.firstElementChild.remove();
  if (force || atBottom) list.scrollTop = list.scrollHeight;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// ---- start --------------------------------------------------------------------------------------

function boot() {
  els.authForm.addEventListener('submit', onAuthSubmit);
  els.messageForm.addEventListener('submit', onSend);
  els.logout.addEventListener('click', () => endSession(''));
  window.addEventListener('online', () => {
    // Back online: try now rather than at the end of a long backoff.
    if (state.token && !state.ws && state.timer) connect();
  });

  const saved = loadSaved();
  if (!saved.token) {
    setStatus('disconnected');
    showAuth('');
    return;
  }
  state.session += 1;
  state.token = saved.token;
  state.user = normaliseUser(saved.user);
  setStatus('connecting');
  showChat();
  const session = state.session;
  checkToken().then((verdict) => {
    if (session !== state.session) return;
    if (verdict === 'unauthorized') {
      endSession(SESSION_ENDED);
      return;
    }
    connect();
  });
}

boot();
