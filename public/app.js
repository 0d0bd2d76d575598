// Causerie chat page: log in over REST, then chat in rooms over one WebSocket.
//
// The wire protocol (routes, frames, close codes) is docs/protocol.md. Everything that comes from the
// network reaches the DOM through textContent, never as markup. This file holds the page's state and
// wires the modules: api.js (REST), socket.js (the connection's comings and goings), rooms.js (rooms and
// message ids), token.js, and view.js (the DOM pieces, whose class names Tailwind reads, with
// index.html's, to build app.css); all are tested by node --test, and the page in Chromium.

import { tokenClaims, tokenExpiry, refreshDelay } from './token.js';
import {
  STABLE_CONNECTION_MS, restartDelay, backoffDelay, disconnectedText, closeAction, socketURL as buildSocketURL,
} from './socket.js';
import { DEFAULT_ROOM, MAX_ROOMS, validRoom, messageId, savedRooms, gapPage } from './rooms.js';
import { api, authErrorText, errorText } from './api.js';
import {
  loadingNote, markFailed, memberText, messageLine, presenceItem, roomItem, setTime, showRoomItem, showState, startNote,
  systemNote, typingText,
} from './view.js';

const TOKEN_KEY = 'causerie.token';
const USER_KEY = 'causerie.user';
const ROOMS_KEY = 'causerie.rooms'; // JSON array of the room names this page is in
const ROOM_KEY = 'causerie.room'; // the current room

// The protocol's rule for a room name.
const ROOM_RULE = 'A room name is 1 to 64 characters: lower-case letters a-z, digits, - and _.';

// A list keeps about this many lines when new ones arrive at the bottom, so a tab left open for days stays
// light; older lines come back by scrolling up.
const MAX_LINES = 1000;
// How close to the bottom (in pixels) still counts as "at the bottom" for auto-scroll.
const BOTTOM_SLACK_PX = 48;
// How close to the top (in pixels) loads older messages.
const TOP_SLACK_PX = 64;
// Scrolling up loads this many messages at a time; fewer means the beginning of the room.
const PAGE_SIZE = 50;
// Filling the gap of an incomplete resume: pages of this size, at most this many pages.
const GAP_PAGE_SIZE = 200;
const GAP_MAX_PAGES = 50;
// A message whose ack never came is sent again after a reconnect, with the same id, up to this many
// sends in all; then it is marked failed.
const MAX_SEND_ATTEMPTS = 3;
// Pending messages are re-sent once their room's backlog has arrived, or after this delay at the latest.
const RESEND_FALLBACK_MS = 2000;
// Typing: send at most one typing frame per room this often; show a typing user this long.
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_SHOW_MS = 3000;
// Token refresh: after a failure that is not a refusal, try again this much later.
const REFRESH_RETRY_MS = 15000;
const MAX_TIMER_MS = 2 ** 31 - 1;

const SESSION_ENDED = 'Your session has ended. Please log in again.';
const LOGOUT_ALL_FAILED = 'Logged out here, but your other devices could not be logged out (the server could not be reached, or this session had already ended). Log in and try again.';

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
  reconnect: document.getElementById('reconnect-button'),
  rooms: document.getElementById('rooms'),
  joinForm: document.getElementById('join-form'),
  joinInput: document.getElementById('join-input'),
  joinButton: document.getElementById('join-button'),
  joinError: document.getElementById('join-error'),
  joinPrivate: document.getElementById('join-private'),
  memberForm: document.getElementById('member-form'),
  memberInput: document.getElementById('member-input'),
  memberButton: document.getElementById('member-button'),
  memberError: document.getElementById('member-error'),
  presenceToggle: document.getElementById('presence-toggle'),
  presencePanel: document.getElementById('presence-panel'),
  presence: document.getElementById('presence'),
  roomTitle: document.getElementById('room-title'),
  messages: document.getElementById('messages'),
  typing: document.getElementById('typing'),
  messageForm: document.getElementById('message-form'),
  input: document.getElementById('message-input'),
  messageError: document.getElementById('message-error'),
  send: document.getElementById('send-button'),
  accountMenu: document.getElementById('account-menu'),
  accountButton: document.getElementById('account-button'),
  logout: document.getElementById('logout-button'),
  logoutAll: document.getElementById('logout-all-button'),
};

const utf8 = new TextEncoder();

const state = {
  token: null,
  maxMessageBytes: 4096, // MAX_MESSAGE_BYTES, until the welcome frame says
  pinned: true, // the message list was scrolled to its bottom when last scrolled
  user: null, // {id, name}
  // session grows at every log in and log out, so that answers and timers of an old session are dropped.
  session: 0,
  ws: null,
  wsToken: null, // the token the open connection runs on (an auth frame replaces it)
  dropped: false, // a connection was lost and none is open yet: the status says "reconnecting"
  attempt: 0, // failed attempts in a row, for the backoff
  timer: 0,
  resendTimer: 0,
  refreshTimer: 0,
  refreshing: null, // the refresh in flight, so that callers share it
  tokenExpired: null, // the renewal started by a token_expired frame on this connection
  rooms: new Map(), // name -> room (see newRoom), in the order of the room list
  current: null, // the name of the current room
  connectSince: new Map(), // room -> id sent in ?since= for the connection being opened
  pending: new Map(), // client id -> {line, room, text, attempts, resend}
  edits: new Map(), // client id -> {room, message, text}: edits sent and not yet acknowledged
  joins: new Map(), // client id -> room name, join frames waiting for their ack
  leaves: new Map(), // client id -> room name, leave frames waiting for their ack
  auths: new Set(), // client ids of auth frames waiting for their ack
  clientSeq: 0,
  quietTimer: 0,
  readTimer: 0,
  listVersion: -1, // the version of the last room list taken from the server
  editing: null, // {room, id, draft}: the message the message box edits, and what the box held before
};

// READ_DELAY_MS gathers the reads of a burst of messages into one read frame.
const READ_DELAY_MS = 500;

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

// forgetSaved drops the token; with everything set (an explicit log out), the room list too, since the
// next person to log in on this browser may be someone else.
function forgetSaved(everything) {
  try {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
    if (everything) {
      localStorage.removeItem(ROOMS_KEY);
      localStorage.removeItem(ROOM_KEY);
    }
  } catch {
    // Nothing was stored.
  }
}

// loadSavedRooms returns the valid room names stored by saveRooms (a JSON array; a comma-separated list
// is accepted too) and the current one, general alone when there are none.
function loadSavedRooms() {
  try {
    return savedRooms(localStorage.getItem(ROOMS_KEY), localStorage.getItem(ROOM_KEY));
  } catch {
    return savedRooms(null, null); // storage disabled
  }
}

function saveRooms() {
  try {
    localStorage.setItem(ROOMS_KEY, JSON.stringify([...state.rooms.keys()]));
    if (state.current) localStorage.setItem(ROOM_KEY, state.current);
  } catch {
    // Storage disabled: the rooms last as long as the tab.
  }
}

function normaliseUser(user, email = '') {
  const u = user && typeof user === 'object' ? user : {};
  let name = typeof u.name === 'string' ? u.name : '';
  if (!name) name = (typeof u.email === 'string' ? u.email : email).split('@')[0];
  return { id: u.id ?? null, name };
}

// ---- token --------------------------------------------------------------------------------------

// scheduleRefresh arms the refresh of the current token: a minute before it expires, or at half its
// lifetime when that comes later (short-lived tokens).
function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = 0;
  const delay = refreshDelay(tokenClaims(state.token), Date.now());
  if (delay === null) return;
  const session = state.session;
  if (delay > MAX_TIMER_MS) {
    state.refreshTimer = setTimeout(scheduleRefresh, MAX_TIMER_MS);
    return;
  }
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = 0;
    if (session === state.session) refreshOnTimer();
  }, delay);
}

async function refreshOnTimer() {
  const session = state.session;
  const verdict = await refreshToken();
  if (session !== state.session) return;
  if (verdict === 'unauthorized') {
    endSession(SESSION_ENDED);
  } else if (verdict === 'unknown') {
    // The server could not be reached: try again while the token still holds.
    const expires = tokenExpiry(state.token);
    if (expires === null || expires > Date.now()) {
      clearTimeout(state.refreshTimer);
      state.refreshTimer = setTimeout(() => {
        state.refreshTimer = 0;
        if (session === state.session) refreshOnTimer();
      }, REFRESH_RETRY_MS);
    }
  }
}

// refreshToken trades the current token for a fresh one (POST /api/token/refresh), stores it and hands
// it to the open connection. It resolves with 'ok', 'unauthorized' (the server refused the token),
// 'unknown' (the server could not be reached or answered oddly) or 'stale' (the session changed).
function refreshToken() {
  if (state.refreshing) return state.refreshing;
  const session = state.session;
  const token = state.token;
  state.refreshing = (async () => {
    try {
      const res = await api('POST', '/api/token/refresh', undefined, token);
      if (session !== state.session) return 'stale';
      if (res.status === 401) return 'unauthorized';
      if (!res.ok || !res.data || typeof res.data.token !== 'string' || !res.data.token) return 'unknown';
      const before = tokenExpiry(token);
      state.token = res.data.token;
      if (res.data.user && typeof res.data.user === 'object') {
        const user = normaliseUser(res.data.user);
        state.user = { id: user.id ?? (state.user && state.user.id), name: user.name || (state.user && state.user.name) || '' };
        showMe();
      }
      save();
      // Near the session's end (SESSION_MAX) a refresh no longer moves the expiry: refreshing again
      // would gain nothing, so the token runs out and the page asks for a log in.
      const after = tokenExpiry(state.token);
      if (before === null || after === null || after > before) scheduleRefresh();
      sendAuth();
      return 'ok';
    } catch {
      return session === state.session ? 'unknown' : 'stale';
    } finally {
      if (session === state.session) state.refreshing = null;
    }
  })();
  return state.refreshing;
}

// renewToken is what a refused token calls for: a refresh when the token has not expired yet by this
// page's clock, else 'expired'.
function renewToken() {
  const expires = tokenExpiry(state.token);
  if (expires !== null && expires <= Date.now()) return Promise.resolve('expired');
  return refreshToken();
}

// sendAuth gives the open connection the current token when it runs on an older one.
function sendAuth() {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !state.wsToken || state.wsToken === state.token) return;
  const id = `a-${nextSeq()}`;
  if (sendFrame({ type: 'auth', token: state.token, id })) {
    state.auths.add(id);
    state.wsToken = state.token;
  }
}

// ---- REST ---------------------------------------------------------------------------------------

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

// fetchMessages reads GET /api/rooms/{room}/messages with the given query. It resolves with the list
// of messages, or null (the server could not be reached, refused, or the session changed). A refused
// token is refreshed once; a session that cannot be renewed goes back to the form.
async function fetchMessages(name, query) {
  const session = state.session;
  const path = `/api/rooms/${encodeURIComponent(name)}/messages?${query}`;
  for (let tries = 0; tries < 2; tries += 1) {
    let res;
    try {
      res = await api('GET', path, undefined, state.token);
    } catch {
      return null;
    }
    if (session !== state.session) return null;
    if (res.status === 401) {
      const verdict = await renewToken();
      if (session !== state.session) return null;
      if (verdict === 'ok') continue;
      if (verdict === 'expired' || verdict === 'unauthorized') endSession(SESSION_ENDED);
      return null;
    }
    if (!res.ok || !res.data || !Array.isArray(res.data.messages)) return null;
    return res.data.messages.filter((m) => m && typeof m === 'object');
  }
  return null;
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
  // The reconnect button is for a connection that will not come back on its own.
  els.reconnect.hidden = !(word === 'disconnected' && state.token && !state.ws && !state.timer);
  updatePlaceholder();
}

function updatePlaceholder() {
  const word = els.status.dataset.state;
  if (word === 'connected') els.input.placeholder = state.current ? `Message #${state.current}` : 'Write a message…';
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
  resetRooms();
  showChat();
  scheduleRefresh();
  connect();
}

// logOut ends this session here, then on the server (with everywhere, every session of the account:
// other browsers and devices), which closes the session's sockets in other tabs and on other devices
// with 4001. Offline, the session ends here only, and the server's ends at SESSION_MAX.
async function logOut(everywhere) {
  els.accountMenu.open = false;
  const token = state.token;
  // First here: the server's 4001 on this tab's own socket must not start a refresh.
  endSession('');
  if (!token) return;
  const session = state.session;
  let ok = false;
  try {
    const res = await api('POST', everywhere ? '/api/logout/all' : '/api/logout', undefined, token, { keepalive: true });
    // A 401 ends this session's part (it was over already), but not the other devices'.
    ok = res.ok || (!everywhere && res.status === 401);
  } catch {
    ok = false;
  }
  if (everywhere && !ok && session === state.session) showAuthError(LOGOUT_ALL_FAILED);
}

// adoptStoredToken follows what another tab of this browser stored: its log out, or the fresh token of a
// refresh (the token this tab holds stops working a little after another tab refreshed it).
function adoptStoredToken(event) {
  if (event.key !== TOKEN_KEY || !state.token) return;
  if (!event.newValue) {
    endSession(SESSION_ENDED);
    return;
  }
  if (event.newValue === state.token) return;
  // Only a token of this session: a connection belongs to the session it opened with.
  const mine = tokenClaims(state.token);
  const theirs = tokenClaims(event.newValue);
  if (!theirs || !mine || theirs.sub !== mine.sub || theirs.jti !== mine.jti) return;
  state.token = event.newValue;
  scheduleRefresh();
  sendAuth();
}

// endSession closes the socket with 1000, forgets the token and shows the form, with message in the
// error area when there is one. A log out (no message) forgets the room list too.
function endSession(message) {
  state.session += 1;
  stopSocket();
  clearTimeout(state.refreshTimer);
  state.refreshTimer = 0;
  state.refreshing = null;
  forgetSaved(!message);
  state.token = null;
  state.user = null;
  clearRooms();
  setStatus('disconnected');
  showAuth(message);
}

// ---- rooms --------------------------------------------------------------------------------------

// roomName is the room a frame or message is about (general when it names none).
function roomName(obj) {
  return obj && typeof obj.room === 'string' && obj.room ? obj.room : DEFAULT_ROOM;
}

function newRoom(name) {
  return {
    name,
    store: document.createElement('div'), // holds the lines while the room is not current
    shown: new Set(), // ids of the messages in the list: nothing is shown twice
    lastId: null, // the highest message id seen, for ?since=
    unread: 0,
    kind: 'public', // or 'private', or 'dm', as the server's room list says
    with: null, // for a DM, the other user
    owner: false, // the user owns the room: adds its members, deletes anyone's messages
    readUpto: 0, // how far the user has read the room, on any device
    stick: true, // the list was at the bottom when last seen
    fromBottom: 0, // else how far from the bottom it was
    atStart: false, // the first message of the room is in the list
    loadingOlder: false,
    resuming: null, // {since, firstId} between the welcome and the room's resumed frame
    users: new Map(), // user id -> name, online in the room
    typing: new Map(), // user id -> {name, timer}
    typingSentAt: 0,
    item: null,
    button: null,
    label: null,
    badge: null,
    badgeLabel: null,
    leave: null,
  };
}

// listOf is the element that holds the lines of room: #messages for the current room.
function listOf(room) {
  return room.name === state.current ? els.messages : room.store;
}

function currentRoom() {
  return state.current ? state.rooms.get(state.current) || null : null;
}

// resetRooms rebuilds the room list from storage, empty.
function resetRooms() {
  clearRooms();
  const { names, current } = loadSavedRooms();
  for (const name of names) addRoom(name);
  switchRoom(current);
}

function clearRooms() {
  for (const room of state.rooms.values()) clearTyping(room);
  state.listVersion = -1;
  if (state.editing) stopEditing();
  state.rooms.clear();
  state.current = null;
  state.pending.clear();
  state.joins.clear();
  state.leaves.clear();
  state.auths.clear();
  state.edits.clear();
  els.rooms.replaceChildren();
  els.messages.replaceChildren();
  els.joinError.textContent = '';
  els.joinInput.removeAttribute('aria-invalid');
  renderPresence();
  renderTyping();
  updateRoomTitle();
}

function addRoom(name) {
  let room = state.rooms.get(name);
  if (room) return room;
  room = newRoom(name);
  state.rooms.set(name, room);

  const item = roomItem(name, () => switchRoom(name), () => leaveRoom(name));
  els.rooms.append(item.item);
  Object.assign(room, item);
  updateRoomList();
  saveRooms();
  return room;
}

// removeRoom forgets a room and its lines; the current room moves to the first one left.
function removeRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  clearTyping(room);
  for (const [id, p] of state.pending) if (p.room === name) state.pending.delete(id);
  const wasCurrent = state.current === name;
  const focusWasIn = room.item.contains(document.activeElement);
  state.rooms.delete(name);
  room.item.remove();
  if (wasCurrent) {
    els.messages.replaceChildren();
    state.current = null;
    const next = state.rooms.keys().next().value;
    if (next) switchRoom(next);
  }
  updateRoomList();
  saveRooms();
  if (focusWasIn) {
    const cur = currentRoom();
    if (cur) cur.button.focus();
  }
}

// syncRooms makes the room list match the rooms the server says this connection is in.
function syncRooms(names) {
  for (const name of [...state.rooms.keys()]) {
    if (!names.includes(name)) {
      removeRoom(name);
      systemLine(`You are no longer in #${name}.`, true);
    }
  }
  for (const name of names) addRoom(name);
  if (!state.current || !state.rooms.has(state.current)) switchRoom(names[0]);
}

function updateRoomList() {
  const single = state.rooms.size <= 1;
  for (const room of state.rooms.values()) showRoomItem(room, room.name === state.current, single);
}

function updateRoomTitle() {
  const room = currentRoom();
  let title = '';
  if (room && room.kind === 'dm' && room.with) title = `@${room.with.name}`;
  else if (room) title = room.kind === 'private' ? `#${room.name} (private)` : `#${room.name}`;
  els.roomTitle.textContent = title;
  // Only the owner adds members: the others would be refused.
  const members = room !== null && room.kind === 'private' && room.owner;
  if (els.memberForm.hidden === members) {
    els.memberForm.hidden = !members;
    els.memberError.textContent = '';
  }
}

// applyRoomList makes the page's rooms the account's, as the server sent them (the welcome, a rooms
// frame): rooms joined on another device are joined here, rooms left there go, and each room's unread
// count is the server's, which counts what was read on every device.
function applyRoomList(list, version) {
  if (!Array.isArray(list)) return;
  // Lists from several nodes are not ordered: one older than the list taken already is dropped.
  if (Number.isSafeInteger(version)) {
    if (version < state.listVersion) return;
    state.listVersion = version;
  }
  const entries = list.filter((e) => e && typeof e === 'object' && validRoom(e.name));
  const listed = new Set(entries.map((e) => e.name));
  const asked = new Set(state.joins.values());
  for (const [name, room] of [...state.rooms]) {
    if (listed.has(name) || asked.has(name)) continue;
    // Left on another device: this connection leaves too, and gets nothing more of it. (A private room's
    // removal has taken this connection out already.)
    if (room.kind === 'public') sendFrame({ type: 'leave', room: name });
    removeRoom(name);
  }
  for (const entry of entries) {
    const known = state.rooms.has(entry.name);
    if (!known && state.rooms.size >= MAX_ROOMS) continue;
    const room = addRoom(entry.name);
    if (entry.kind === 'public' || entry.kind === 'private' || entry.kind === 'dm') room.kind = entry.kind;
    room.with = dmWith(entry);
    room.owner = entry.owner === true;
    if (messageId(entry.read_upto) !== null) room.readUpto = Math.max(room.readUpto, entry.read_upto);
    if (messageId(entry.unread) !== null && entry.name !== state.current) room.unread = entry.unread;
    // A room of the list this connection is not in yet: joined quietly, without moving to it.
    if (!known && !asked.has(entry.name)) sendFrame({ type: 'join', room: entry.name });
  }
  if (!state.current || !state.rooms.has(state.current)) {
    const first = state.rooms.keys().next().value;
    if (first) switchRoom(first);
  }
  updateRoomList();
  updateRoomTitle();
}

// dmWith returns the other user of a DM's room list entry, or null.
function dmWith(entry) {
  return entry.with && typeof entry.with.name === 'string' ? { id: entry.with.id, name: entry.with.name } : null;
}

// onRead takes the read state of a room, from this device or another: its unread count is the server's.
function onRead(frame) {
  const room = typeof frame.room === 'string' ? state.rooms.get(frame.room) : undefined;
  if (!room) return;
  if (messageId(frame.upto) !== null) room.readUpto = Math.max(room.readUpto, frame.upto);
  if (messageId(frame.unread) !== null && room.name !== state.current) room.unread = frame.unread;
  updateRoomList();
}

// markRead tells the server, and so every device, that the current room is read up to its newest message,
// once the page is visible and focused; a burst of messages makes one read frame.
function markRead() {
  if (state.readTimer) return;
  state.readTimer = setTimeout(() => {
    state.readTimer = 0;
    const room = currentRoom();
    if (!room || room.lastId === null || room.lastId <= room.readUpto) return;
    if (document.visibilityState !== 'visible' || !document.hasFocus()) return;
    if (sendFrame({ type: 'read', room: room.name, upto: room.lastId })) room.readUpto = room.lastId;
  }, READ_DELAY_MS);
}

// switchRoom makes a room current: its lines move into #messages, at the scroll position they had.
function switchRoom(name) {
  const next = state.rooms.get(name);
  if (!next || name === state.current) return;
  if (state.editing && state.editing.room !== name) stopEditing();
  const prev = currentRoom();
  const list = els.messages;
  // The lines moving in are not news: keep the live region quiet while they move.
  const quiet = next.store.childElementCount > 0;
  if (quiet) list.setAttribute('aria-live', 'off');
  if (prev) {
    prev.stick = isAtBottom(list);
    prev.fromBottom = list.scrollHeight - list.scrollTop;
    prev.store.replaceChildren(...list.childNodes);
  } else {
    list.replaceChildren();
  }
  list.replaceChildren(...next.store.childNodes);
  state.current = name;
  next.unread = 0;
  list.scrollTop = next.stick ? list.scrollHeight : list.scrollHeight - next.fromBottom;
  if (quiet) {
    clearTimeout(state.quietTimer);
    state.quietTimer = setTimeout(() => list.setAttribute('aria-live', 'polite'), 100);
  }
  updateRoomList();
  next.button.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  updateRoomTitle();
  updatePlaceholder();
  renderPresence();
  renderTyping();
  saveRooms();
  maybeLoadOlder(next);
  markRead();
}

function onJoinSubmit(event) {
  event.preventDefault();
  const name = els.joinInput.value.trim();
  if (!validRoom(name)) {
    joinFailed(ROOM_RULE);
    return;
  }
  els.joinError.textContent = '';
  els.joinInput.removeAttribute('aria-invalid');
  if (state.rooms.has(name)) {
    els.joinInput.value = '';
    switchRoom(name);
    state.rooms.get(name).button.focus();
    return;
  }
  if (state.rooms.size >= MAX_ROOMS) {
    joinFailed(`You can be in at most ${MAX_ROOMS} rooms: leave one first.`);
    return;
  }
  if ([...state.joins.values()].includes(name)) return; // already asked
  if (els.joinPrivate.checked) {
    createRoom(name, true);
    return;
  }
  sendJoin(name);
}

// joinFailed shows why the room of the join form could not be joined.
function joinFailed(text) {
  els.joinError.textContent = text;
  els.joinInput.setAttribute('aria-invalid', 'true');
  els.joinInput.focus();
}

function sendJoin(name) {
  const id = `j-${nextSeq()}`;
  if (!sendFrame({ type: 'join', room: name, id })) {
    joinFailed('Not connected: try again once the connection is back.');
    return;
  }
  state.joins.set(id, name);
  els.joinButton.setAttribute('aria-busy', 'true');
}

// createRoom makes the room the join form named (public unless isPrivate), then joins it. A name that is
// taken (by a private room, or by someone quicker) is not joined again: the server said no already.
async function createRoom(name, isPrivate = false) {
  els.joinButton.setAttribute('aria-busy', 'true');
  let res = null;
  try {
    res = await api('POST', '/api/rooms', { name, private: isPrivate }, state.token);
  } catch {
    // Not reached: said below.
  }
  if (state.joins.size === 0) els.joinButton.removeAttribute('aria-busy');
  if (!res) {
    joinFailed('Could not reach the server: try again.');
    return;
  }
  if (res.status !== 201) {
    joinFailed(res.status === 409 ? `The name #${name} is taken: choose another.` : errorText(res));
    return;
  }
  els.joinPrivate.checked = false;
  sendJoin(name);
}

// onMemberSubmit adds the user named in the member form to the current room, a private one.
async function onMemberSubmit(event) {
  event.preventDefault();
  const room = currentRoom();
  const name = els.memberInput.value.trim();
  if (!room || !name) return;
  els.memberError.textContent = '';
  els.memberButton.setAttribute('aria-busy', 'true');
  let res = null;
  try {
    res = await api('PUT', `/api/rooms/${room.name}/members/${encodeURIComponent(name)}`, undefined, state.token);
  } catch {
    // Not reached: said below.
  }
  els.memberButton.removeAttribute('aria-busy');
  if (res && (res.status === 201 || res.status === 204)) {
    els.memberInput.value = '';
    els.memberInput.removeAttribute('aria-invalid');
    if (res.status === 204) els.memberError.textContent = `${name} is a member already.`;
    return;
  }
  els.memberError.textContent = res ? errorText(res) : 'Could not reach the server: try again.';
  els.memberInput.setAttribute('aria-invalid', 'true');
  els.memberInput.focus();
}

// openDM opens the direct message with the user called name, from the online list: made by the first
// call from either side, the same room from both.
async function openDM(name) {
  let res = null;
  try {
    res = await api('POST', '/api/dms', { user: name }, state.token);
  } catch {
    // Not reached: said below.
  }
  if (!res || !res.ok || !res.data || !validRoom(res.data.name)) {
    systemLine(res ? `Could not open a direct message with ${name}: ${errorText(res)}` : 'Could not reach the server: try again.', true);
    return;
  }
  const entry = res.data;
  if (state.rooms.has(entry.name)) {
    switchRoom(entry.name);
    return;
  }
  const room = addRoom(entry.name);
  room.kind = 'dm';
  room.with = dmWith(entry);
  updateRoomList();
  sendJoin(entry.name);
}

function onJoinAck(frame) {
  const asked = typeof frame.id === 'string' ? state.joins.get(frame.id) : undefined;
  if (asked !== undefined) state.joins.delete(frame.id);
  const name = validRoom(frame.room) ? frame.room : asked;
  if (!name) return;
  if (state.joins.size === 0) els.joinButton.removeAttribute('aria-busy');
  addRoom(name);
  if (asked !== undefined) {
    if (els.joinInput.value.trim() === name) els.joinInput.value = '';
    switchRoom(name);
    if (document.activeElement === els.joinInput || document.activeElement === els.joinButton) els.input.focus();
  }
}

function leaveRoom(name) {
  const room = state.rooms.get(name);
  if (!room || state.rooms.size <= 1 || room.kind === 'dm') return;
  if (room.kind === 'private') {
    leavePrivate(room);
    return;
  }
  if ([...state.leaves.values()].includes(name)) return;
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    // Not connected: the next connection simply does not ask for the room.
    removeRoom(name);
    return;
  }
  const id = `l-${nextSeq()}`;
  if (!sendFrame({ type: 'leave', room: name, id })) {
    removeRoom(name);
    return;
  }
  state.leaves.set(id, name);
  room.leave.disabled = true;
}

// leavePrivate ends the user's membership of a private room; the member_left event that follows takes
// the room off the list, on every device.
async function leavePrivate(room) {
  room.leave.disabled = true;
  let res = null;
  try {
    res = await api('DELETE', `/api/rooms/${room.name}/members/${encodeURIComponent(state.user ? state.user.name : '')}`, undefined, state.token);
  } catch {
    // Not reached: said below.
  }
  room.leave.disabled = false;
  if (!res || !res.ok) systemLine(res ? `Could not leave #${room.name}: ${errorText(res)}` : 'Could not reach the server: try again.', true, room);
}

function onLeaveAck(frame) {
  const asked = typeof frame.id === 'string' ? state.leaves.get(frame.id) : undefined;
  if (asked !== undefined) state.leaves.delete(frame.id);
  const name = validRoom(frame.room) ? frame.room : asked;
  if (name) removeRoom(name);
}

// ---- presence and typing ------------------------------------------------------------------------

function userKey(user) {
  return user && typeof user === 'object' && user.id != null ? String(user.id) : null;
}

function userName(user) {
  return user && typeof user.name === 'string' ? user.name : '';
}

function isMe(user) {
  const key = userKey(user);
  return key !== null && !!state.user && state.user.id != null && key === String(state.user.id);
}

function onPresence(frame) {
  const room = roomFor(frame);
  if (!room || !Array.isArray(frame.users)) return;
  room.users = new Map();
  for (const user of frame.users) {
    const key = userKey(user);
    if (key !== null) room.users.set(key, userName(user));
  }
  if (room.name === state.current) renderPresence();
}

function onJoined(frame) {
  const room = roomFor(frame);
  const key = userKey(frame.user);
  if (!room || key === null) return;
  room.users.set(key, userName(frame.user));
  if (room.name === state.current) renderPresence();
}

function onLeft(frame) {
  const room = roomFor(frame);
  const key = userKey(frame.user);
  if (!room || key === null) return;
  room.users.delete(key);
  stopTyping(room, key);
  if (room.name === state.current) renderPresence();
}

function renderPresence() {
  const room = currentRoom();
  const users = room ? [...room.users].sort((a, b) => a[1].localeCompare(b[1])) : [];
  const self = state.user && state.user.id != null ? String(state.user.id) : null;
  const items = users.map(([key, name]) => presenceItem(key, name, key === self, openDM));
  els.presence.replaceChildren(...items);
  for (const el of document.querySelectorAll('.presence-count')) el.textContent = String(users.length);
  for (const el of document.querySelectorAll('.presence-room')) el.textContent = room ? `#${room.name}` : '';
}

function togglePresence() {
  const open = els.presenceToggle.getAttribute('aria-expanded') !== 'true';
  els.presenceToggle.setAttribute('aria-expanded', String(open));
  if (open) els.presencePanel.dataset.open = 'true';
  else delete els.presencePanel.dataset.open;
}

function onTyping(frame) {
  const room = roomFor(frame);
  const key = userKey(frame.user);
  if (!room || key === null || isMe(frame.user)) return;
  const entry = room.typing.get(key);
  if (entry) clearTimeout(entry.timer);
  const timer = setTimeout(() => stopTyping(room, key), TYPING_SHOW_MS);
  room.typing.set(key, { name: userName(frame.user) || 'someone', timer });
  if (room.name === state.current) renderTyping();
}

function stopTyping(room, key) {
  const entry = room.typing.get(key);
  if (!entry) return;
  clearTimeout(entry.timer);
  room.typing.delete(key);
  if (room.name === state.current) renderTyping();
}

function clearTyping(room) {
  for (const entry of room.typing.values()) clearTimeout(entry.timer);
  room.typing.clear();
  if (room.name === state.current) renderTyping();
}

function renderTyping() {
  const room = currentRoom();
  const text = typingText(room ? [...room.typing.values()].map((e) => e.name) : []);
  // Setting the same text again would make screen readers repeat it.
  if (els.typing.textContent !== text) els.typing.textContent = text;
}

function onInput() {
  if (els.input.hasAttribute('aria-invalid') && utf8.encode(els.input.value).length <= state.maxMessageBytes) {
    els.input.removeAttribute('aria-invalid');
    els.messageError.textContent = '';
  }
  if (els.input.value.trim() === '') return;
  const room = currentRoom();
  if (!room) return;
  const now = Date.now();
  if (now - room.typingSentAt < TYPING_SEND_EVERY_MS) return;
  if (sendFrame({ type: 'typing', room: room.name })) room.typingSentAt = now;
}

// ---- WebSocket ----------------------------------------------------------------------------------

function nextSeq() {
  state.clientSeq += 1;
  return state.clientSeq;
}

// sendFrame sends one frame on the open connection; false when there is none or the send failed.
function sendFrame(frame) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  try {
    ws.send(JSON.stringify(frame));
    return true;
  } catch {
    return false;
  }
}

function socketURL() {
  state.connectSince = new Map();
  for (const room of state.rooms.values()) {
    if (room.lastId !== null) state.connectSince.set(room.name, room.lastId);
  }
  return buildSocketURL(location, state.token, [...state.rooms.keys()], state.connectSince);
}

function connect() {
  clearTimeout(state.timer);
  state.timer = 0;
  if (!state.token || state.ws) return;
  setStatus(state.dropped ? 'reconnecting' : 'connecting');
  const ws = new WebSocket(socketURL());
  state.ws = ws;
  state.wsToken = state.token;
  state.tokenExpired = null;
  let openedAt = 0;
  ws.onopen = () => {
    if (ws !== state.ws) return;
    openedAt = Date.now();
    state.dropped = false;
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
  clearTimeout(state.resendTimer);
  state.resendTimer = 0;
  const ws = state.ws;
  state.ws = null;
  state.wsToken = null;
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

// halt stops reconnecting: the pending messages fail and the reconnect button shows.
function halt(text) {
  failPending('Not sent: the connection was closed.');
  setStatus('disconnected');
  if (text) systemLine(text, true);
}

async function onClose(event, openedAt) {
  state.ws = null;
  state.wsToken = null;
  clearTimeout(state.resendTimer);
  state.resendTimer = 0;
  const session = state.session;
  const code = event.code;
  const expired = state.tokenExpired;
  state.tokenExpired = null;

  // Frames that waited for an answer on this connection will not get one.
  if (state.joins.size > 0) {
    els.joinError.textContent = 'The connection dropped before the room was joined: try again.';
    state.joins.clear();
    els.joinButton.removeAttribute('aria-busy');
  }
  for (const name of state.leaves.values()) {
    const room = state.rooms.get(name);
    if (room) room.leave.disabled = false;
  }
  state.leaves.clear();
  state.auths.clear();
  // An edit sent without an answer may or may not be saved: its text is kept, as a refused one's.
  for (const id of [...state.edits.keys()]) refuseEdit(id, 'the connection dropped; save it again once it is back');
  // Who is online is known again from the presence frames of the next connection; until then the list
  // would show people who may have left.
  for (const room of state.rooms.values()) {
    clearTyping(room);
    room.users.clear();
    room.resuming = null;
  }
  renderPresence();
  // Unacknowledged messages are sent again after the reconnect, with the same id; those sent too many
  // times already fail now.
  for (const [id, p] of state.pending) {
    if (p.attempts >= MAX_SEND_ATTEMPTS) {
      state.pending.delete(id);
      markFailed(p.line, 'Not confirmed: the connection was lost. It may not have been sent.');
    } else {
      p.resend = true;
    }
  }

  if (openedAt) {
    console.info(`Causerie: disconnected (code ${code}${event.reason ? `, ${event.reason}` : ''})`);
    systemLine(disconnectedText(code));
    if (Date.now() - openedAt >= STABLE_CONNECTION_MS) state.attempt = 0;
  } else if (!state.dropped) {
    systemLine('Cannot connect to the chat server. Retrying…');
  }

  const action = closeAction(code, event.reason, Boolean(expired));
  if (action.halt) {
    halt(action.halt);
    return;
  }

  state.dropped = true;
  setStatus('reconnecting');

  if (action.renew) {
    // The token was refused or expired: a fresh one first (the one token_expired went for, if any).
    const verdict = expired instanceof Promise ? await expired : await renewToken();
    if (session !== state.session) return;
    if (verdict === 'ok') {
      state.timer = setTimeout(connect, restartDelay());
      return;
    }
    if (verdict === 'expired' || verdict === 'unauthorized') {
      endSession(SESSION_ENDED);
      return;
    }
    state.timer = setTimeout(connect, nextBackoff());
    return;
  }

  const restart = action.reconnect === 'soon';
  const expires = tokenExpiry(state.token);
  if (restart && expires !== null && expires > Date.now()) {
    // The server is restarting and the token still holds: come back soon.
    state.timer = setTimeout(connect, restartDelay());
    return;
  }
  // Any other close can still mean that the token expired or was revoked: ask before trying again, so that
  // an ended session goes back to the form instead of looping.
  const verdict = await checkToken();
  if (session !== state.session) return;
  if (verdict === 'unauthorized') {
    endSession(SESSION_ENDED);
    return;
  }
  const delay = restart ? restartDelay() : nextBackoff();
  state.timer = setTimeout(connect, delay);
}

// nextBackoff is the wait before the next attempt, which counts one more failure in a row.
function nextBackoff() {
  const delay = backoffDelay(state.attempt);
  state.attempt = Math.min(state.attempt + 1, 20);
  return delay;
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
      onMessage(frame);
      break;
    case 'history':
      onHistory(frame);
      break;
    case 'member':
      onMember(frame);
      break;
    case 'change':
      onChange(frame);
      break;
    case 'rooms':
      applyRoomList(frame.rooms, frame.version);
      break;
    case 'read':
      onRead(frame);
      break;
    case 'resumed':
      onResumed(frame);
      break;
    case 'presence':
      onPresence(frame);
      break;
    case 'joined':
      onJoined(frame);
      break;
    case 'left':
      onLeft(frame);
      break;
    case 'typing':
      onTyping(frame);
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

// roomFor returns the room a frame is about, or null when this page is not in it. A room being joined
// is added at its first frame, should that come before the ack.
function roomFor(frame) {
  const name = roomName(frame);
  const room = state.rooms.get(name);
  if (room) return room;
  if ([...state.joins.values()].includes(name)) return addRoom(name);
  return null;
}

function onWelcome(frame) {
  if (frame.user && typeof frame.user === 'object') {
    const name = typeof frame.user.name === 'string' && frame.user.name ? frame.user.name : state.user && state.user.name;
    state.user = { id: frame.user.id ?? (state.user && state.user.id), name: name || '' };
    save();
  }
  if (Array.isArray(frame.rooms)) {
    const names = [...new Set(frame.rooms.filter(validRoom))];
    if (names.length > 0) syncRooms(names);
  }
  applyRoomList(frame.room_list, frame.room_list_version);
  // Connected once the welcome says who, where, and how long a message may be: not at the upgrade, before
  // which the page knows none of it.
  setStatus('connected');
  systemLine('Connected');
  if (Number.isSafeInteger(frame.max_message_bytes) && frame.max_message_bytes > 0) {
    state.maxMessageBytes = frame.max_message_bytes;
  }
  for (const [name, since] of state.connectSince) {
    const room = state.rooms.get(name);
    if (room) room.resuming = { since, firstId: null };
  }
  // Show the chat if it is not shown yet; on a reconnect, leave the focus where the user put it.
  if (els.chat.hidden) showChat();
  else showMe();
  renderPresence();
  // A token refreshed while this connection was opening: hand it over.
  sendAuth();
  // Pending messages go again once their room's backlog is in; at the latest after a short while.
  clearTimeout(state.resendTimer);
  state.resendTimer = setTimeout(() => {
    state.resendTimer = 0;
    for (const room of state.rooms.values()) resendPending(room);
  }, RESEND_FALLBACK_MS);
}

function onMessage(frame) {
  const room = roomFor(frame);
  if (!room) return;
  const id = messageId(frame.id);
  if (room.resuming && room.resuming.firstId === null && id !== null) room.resuming.firstId = id;
  addMessage(room, frame, 'live');
}

// onMember shows a member event in its place in the room; one that takes this user out of the room (a
// removal, or leaving from another device) takes the room off the list: the server sends nothing more
// of it.
function onMember(frame) {
  const room = roomFor(frame);
  if (!room) return;
  const id = messageId(frame.id);
  if (room.resuming && room.resuming.firstId === null && id !== null) room.resuming.firstId = id;
  addMessage(room, frame, 'live');
  const me = state.user && frame.user && String(frame.user.id) === String(state.user.id);
  if (me && (frame.kind === 'member_removed' || frame.kind === 'member_left')) {
    removeRoom(room.name);
    if (frame.kind === 'member_removed') systemLine(`You were removed from #${room.name}.`, true);
  }
}

function onHistory(frame) {
  const room = roomFor(frame);
  if (!room) return;
  const messages = (Array.isArray(frame.messages) ? frame.messages : []).filter((m) => m && typeof m === 'object');
  for (const message of messages) addMessage(room, message, 'history');
  if (messages.length === 0 && room.shown.size === 0) markStart(room);
  if (room.name === state.current && room.stick) els.messages.scrollTop = els.messages.scrollHeight;
  resendPending(room);
  maybeLoadOlder(room);
}

function onResumed(frame) {
  const room = roomFor(frame);
  if (!room) return;
  const info = room.resuming;
  room.resuming = null;
  resendPending(room);
  if (frame.complete === false && info && info.firstId !== null && info.firstId > info.since + 1) {
    fillGap(room, info.since, info.firstId).then(() => refreshShown(room));
  }
}

function onAck(frame) {
  const kind = typeof frame.for === 'string' ? frame.for : frame.message ? 'message' : '';
  switch (kind) {
    case 'message':
      onMessageAck(frame);
      break;
    case 'join':
      onJoinAck(frame);
      break;
    case 'leave':
      onLeaveAck(frame);
      break;
    case 'auth':
      if (typeof frame.id === 'string') state.auths.delete(frame.id);
      break;
    case 'edit':
      if (typeof frame.id === 'string') state.edits.delete(frame.id);
      onChange(frame.change);
      break;
    case 'delete':
    case 'react':
    case 'unreact':
      onChange(frame.change);
      break;
    default:
      break;
  }
}

function onMessageAck(frame) {
  const message = frame.message && typeof frame.message === 'object' ? frame.message : null;
  const p = typeof frame.id === 'string' ? state.pending.get(frame.id) : undefined;
  if (!p) {
    if (message) {
      const room = roomFor(message);
      if (room) addMessage(room, message, 'live');
    }
    return;
  }
  state.pending.delete(frame.id);
  const { line } = p;
  line.classList.remove('pending');
  if (!message) return;
  const room = state.rooms.get(p.room);
  const id = messageId(message.id);
  if (!room) return;
  if (id !== null && room.shown.has(id)) {
    line.remove(); // already on screen (a replay came first)
    return;
  }
  if (typeof message.text === 'string') line.querySelector('.msg-text').textContent = message.text;
  markDelivered(room, line, id, message.at);
  showMessageState(line, message);
  // One's own message is read: on another device it must not count as unread.
  if (room.name === state.current) markRead();
}

function onError(frame) {
  const code = typeof frame.code === 'string' ? frame.code : 'error';
  const text = typeof frame.message === 'string' && frame.message
    ? frame.message
    : `The server refused a frame (${code})`;
  const id = typeof frame.id === 'string' ? frame.id : null;

  if (code === 'token_expired') {
    // The server closes with 4001 next; get a fresh token meanwhile.
    state.tokenExpired = renewToken();
    return;
  }
  if (id !== null && state.pending.has(id)) {
    const p = state.pending.get(id);
    state.pending.delete(id);
    markFailed(p.line, `Not sent: ${text}`);
    return;
  }
  if (id !== null && state.edits.has(id)) {
    refuseEdit(id, text);
    return;
  }
  if (id !== null && state.joins.has(id)) {
    const name = state.joins.get(id);
    state.joins.delete(id);
    if (state.joins.size === 0) els.joinButton.removeAttribute('aria-busy');
    if (code === 'not_found') {
      // Rooms exist before they are joined: the join form makes the room it names.
      createRoom(name);
      return;
    }
    els.joinError.textContent = text;
    els.joinInput.setAttribute('aria-invalid', 'true');
    return;
  }
  if (id !== null && state.leaves.has(id)) {
    const name = state.leaves.get(id);
    state.leaves.delete(id);
    if (code === 'not_joined') {
      removeRoom(name);
      return;
    }
    const room = state.rooms.get(name);
    if (room) room.leave.disabled = false;
    systemLine(`Could not leave #${name}: ${text}`, true);
    return;
  }
  if (id !== null && state.auths.has(id)) {
    // The fresh token was refused: the connection keeps the old one until it expires (then 4001).
    state.auths.delete(id);
    systemLine(`The server refused the renewed session: ${text}`, true);
    return;
  }
  if ((code === 'invalid_room' || code === 'too_many_rooms') && state.joins.size > 0) {
    els.joinError.textContent = text;
    els.joinInput.setAttribute('aria-invalid', 'true');
    return;
  }
  const room = typeof frame.room === 'string' ? state.rooms.get(frame.room) : undefined;
  systemLine(text, true, room || currentRoom());
}

// ---- sending ------------------------------------------------------------------------------------

function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID exists only in secure contexts (https, localhost).
  return `c-${Date.now().toString(36)}-${nextSeq()}-${Math.random().toString(36).slice(2, 10)}`;
}

function onSend(event) {
  event.preventDefault();
  const text = els.input.value;
  els.input.focus();
  if (text.trim() === '') return;
  // The server counts UTF-8 bytes, not characters: "é" is two, most emoji four. The text stays in the
  // box, to be shortened.
  const bytes = utf8.encode(text).length;
  if (bytes > state.maxMessageBytes) {
    els.input.setAttribute('aria-invalid', 'true');
    els.messageError.textContent = `Too long to send: ${bytes} bytes, and a message holds ${state.maxMessageBytes} (accented letters take 2, emoji 4). Shorten it, or split it in two.`;
    return;
  }
  const room = currentRoom();
  const ws = state.ws;
  if (!room || !ws || ws.readyState !== WebSocket.OPEN) return;
  if (state.editing) {
    const { room: editRoom, id: message } = state.editing;
    const id = newClientId();
    if (sendFrame({ type: 'edit', room: editRoom, message, text, id })) {
      state.edits.set(id, { room: editRoom, message, text });
      stopEditing();
    }
    return;
  }
  const id = newClientId();
  const line = messageLine(state.user ? state.user.name : '', text, true);
  line.classList.add('pending');
  line.dataset.clientId = id;
  appendLine(room, line, true);
  if (!sendFrame({ type: 'message', text, id, room: room.name })) {
    markFailed(line, 'Not sent: the connection is closed.');
    return;
  }
  state.pending.set(id, { line, room: room.name, text, attempts: 1, resend: false });
  els.input.value = '';
}

// resendPending sends again, with the same id, the messages of room whose ack a dropped connection
// never brought. The server acks a repeated id with the stored message instead of storing it twice.
function resendPending(room) {
  for (const [id, p] of state.pending) {
    if (p.room !== room.name || !p.resend) continue;
    if (!sendFrame({ type: 'message', text: p.text, id, room: p.room })) return;
    p.resend = false;
    p.attempts += 1;
  }
}

function failPending(text) {
  for (const p of state.pending.values()) markFailed(p.line, text);
  state.pending.clear();
}

// ---- message lists ------------------------------------------------------------------------------

function lineId(node) {
  return node.dataset && node.dataset.id ? messageId(node.dataset.id) : null;
}

function isOwn(message) {
  const from = message.from;
  if (!from || typeof from !== 'object' || from.id == null || !state.user || state.user.id == null) return false;
  return String(from.id) === String(state.user.id);
}

function isAtBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight <= BOTTOM_SLACK_PX;
}

function lineFor(message) {
  const event = memberText(message);
  if (event) return systemNote(event, false);
  const from = message.from && typeof message.from === 'object' ? message.from : {};
  const author = typeof from.name === 'string' ? from.name : '';
  const text = typeof message.text === 'string' ? message.text : '';
  const line = messageLine(author, text, isOwn(message));
  showMessageState(line, message);
  return line;
}

// showMessageState shows message's current state on its line, with the buttons that change it.
function showMessageState(line, message) {
  const id = messageId(message.id);
  if (id === null || !validRoom(message.room)) return;
  const me = state.user ? state.user.id : null;
  const room = state.rooms.get(message.room);
  const owner = room !== undefined && room.owner;
  showState(line, message, me, isOwn(message), owner, (kind, emoji) => requestChange(message.room, id, kind, emoji, line));
}

// requestChange asks the server for a change to message id of room: an edit goes through the message
// box, the others at once.
function requestChange(room, id, kind, emoji, line) {
  if (kind === 'edit') {
    startEditing(room, id, line.querySelector('.msg-text').textContent);
    return;
  }
  if (!sendFrame({ type: kind, room, message: id, emoji, id: newClientId() })) {
    systemLine('Not connected: try again once the connection is back.', true);
  }
}

// refuseEdit gives the text of edit id, which was not saved, back to the message box, to be mended and
// saved, or given up (Escape); when the box is busy with another edit, or the edit was of another room,
// the text goes in a line of the room shown, so that it is not lost either.
function refuseEdit(id, reason) {
  const e = state.edits.get(id);
  state.edits.delete(id);
  if (!e) return;
  if (!state.editing && e.room === state.current) {
    startEditing(e.room, e.message, e.text);
    els.messageError.textContent = `Not saved: ${reason}`;
    return;
  }
  systemLine(`Your edit in #${e.room} was not saved (${reason}). Its text: ${e.text}`, true);
}

// startEditing puts text, message id's of room, in the message box to be edited and saved.
function startEditing(room, id, text) {
  // What was being written waits for the edit to end.
  const draft = state.editing ? state.editing.draft : els.input.value;
  state.editing = { room, id, draft };
  els.input.value = text;
  els.send.textContent = 'Save';
  els.input.setAttribute('aria-label', 'Edit your message (Escape to cancel)');
  els.input.focus();
}

// stopEditing ends an edit; the message box gets back what was being written before it.
function stopEditing() {
  const draft = state.editing ? state.editing.draft : '';
  state.editing = null;
  els.messageError.textContent = '';
  els.send.textContent = 'Send';
  els.input.removeAttribute('aria-label');
  els.input.value = draft;
}

// onChange shows a change to a message (an edit, a deletion, a reaction) in its place, when it is shown.
function onChange(change) {
  if (!change || typeof change !== 'object') return;
  const room = typeof change.room === 'string' ? state.rooms.get(change.room) : undefined;
  const message = change.message;
  if (!room || !message || typeof message !== 'object') return;
  const entry = messageId(change.id);
  if (room.resuming && room.resuming.firstId === null && entry !== null) room.resuming.firstId = entry;
  noteId(room, entry);
  const id = messageId(message.id);
  if (id === null) return;
  const line = listOf(room).querySelector(`[data-id="${id}"]`);
  if (line && line.classList.contains('msg')) showMessageState(line, message);
}

function noteId(room, id) {
  if (id !== null && (room.lastId === null || id > room.lastId)) room.lastId = id;
}

// addMessage puts a message in its room's list, in id order, unless it is there already. source is
// 'live' (a message frame, replays included), 'history', or 'gap' (missed messages fetched over REST).
function addMessage(room, message, source) {
  const id = messageId(message.id);
  noteId(room, id);
  if (id !== null && room.shown.has(id)) return;
  const line = lineFor(message);
  markDelivered(room, line, id, message.at);
  const list = listOf(room);
  const current = list === els.messages;
  const atBottom = current ? isAtBottom(list) : room.stick;
  insertOrdered(list, line, id);
  if (source === 'live') {
    const key = userKey(message.from);
    if (key !== null) stopTyping(room, key);
  }
  // As the server counts: the messages of others, not one's own, nor member events.
  if (source !== 'history' && !current && !isOwn(message) && !message.kind) {
    room.unread += 1;
    updateRoomList();
  }
  if (atBottom && source !== 'gap') trim(room, list);
  if (current && atBottom) list.scrollTop = list.scrollHeight;
  if (current) markRead();
}

// insertOrdered inserts line before the first message with a larger id, or at the end. Lines without an
// id (pending messages, system lines) do not move.
function insertOrdered(list, line, id) {
  let before = null;
  if (id !== null) {
    for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
      const other = lineId(node);
      if (other === null) continue;
      if (other > id) before = node;
      else break;
    }
  }
  list.insertBefore(line, before);
}

// trim drops the oldest lines past MAX_LINES; they come back by scrolling up.
function trim(room, list) {
  while (list.childElementCount > MAX_LINES) {
    const node = list.firstElementChild;
    const id = lineId(node);
    if (id !== null) {
      room.shown.delete(id);
      room.atStart = false;
    }
    node.remove();
  }
}

// appendLine adds a line at the bottom of room's list and scrolls with it when the reader was already at
// the bottom (or force is set: one's own message).
function appendLine(room, line, force) {
  const list = listOf(room);
  const current = list === els.messages;
  const atBottom = current ? isAtBottom(list) : room.stick;
  list.append(line);
  if (atBottom) trim(room, list);
  if (current && (force || atBottom)) list.scrollTop = list.scrollHeight;
}

function markDelivered(room, line, id, at) {
  if (id !== null) {
    line.dataset.id = String(id);
    room.shown.add(id);
    noteId(room, id);
  }
  setTime(line, at);
}

// systemLine adds a line about the connection or an error, to the current room unless told otherwise.
function systemLine(text, isError = false, room = currentRoom()) {
  if (!room) return;
  appendLine(room, systemNote(text, isError), false);
}

// markStart puts the "beginning of the room" line at the top of room's list.
function markStart(room) {
  room.atStart = true;
  const list = listOf(room);
  if (list.querySelector('.msg-start')) return;
  list.prepend(startNote(room.name));
}

function oldestShownId(room) {
  for (const node of listOf(room).children) {
    const id = lineId(node);
    if (id !== null) return id;
  }
  return null;
}

function onScroll() {
  state.pinned = isAtBottom(els.messages);
  const room = currentRoom();
  if (room) maybeLoadOlder(room);
}

// keepPinned keeps a reader who was at the newest message there when the list's box shrinks: the online
// panel opening at phone width, a phone's keyboard, a smaller window.
function keepPinned() {
  if (state.pinned) els.messages.scrollTop = els.messages.scrollHeight;
}

// maybeLoadOlder loads the messages before the oldest one shown when the current room's list is scrolled
// to the top (or too short to scroll), and keeps what the reader sees in place.
async function maybeLoadOlder(room) {
  if (room.atStart || room.loadingOlder || room.name !== state.current) return;
  if (els.messages.scrollTop > TOP_SLACK_PX) return;
  const before = oldestShownId(room);
  if (before === null) return; // nothing shown yet: the history frame comes first
  const session = state.session;
  room.loadingOlder = true;
  const loading = loadingNote();
  listOf(room).prepend(loading);
  els.messages.setAttribute('aria-busy', 'true');
  let messages = null;
  try {
    messages = await fetchMessages(room.name, `before=${before}&limit=${PAGE_SIZE}`);
  } finally {
    loading.remove();
    room.loadingOlder = false;
    els.messages.removeAttribute('aria-busy');
  }
  if (session !== state.session || state.rooms.get(room.name) !== room) return;
  if (messages === null) {
    systemLine('Could not load older messages.', true, room);
    return;
  }
  const list = listOf(room);
  const current = list === els.messages;
  const fromBottom = list.scrollHeight - list.scrollTop;
  const fragment = document.createDocumentFragment();
  let added = 0;
  for (const message of messages) {
    const id = messageId(message.id);
    if (id === null || id >= before || room.shown.has(id)) continue;
    const line = lineFor(message);
    markDelivered(room, line, id, message.at);
    fragment.append(line);
    added += 1;
  }
  list.prepend(fragment);
  if (messages.length < PAGE_SIZE) markStart(room);
  if (current) {
    list.scrollTop = list.scrollHeight - fromBottom;
    // Still at the top (a short list): go on, as long as the pages bring something new.
    if (added > 0) requestAnimationFrame(() => maybeLoadOlder(room));
  }
}

// refreshShown shows the newest page of room's messages as they are now: an incomplete resume left out
// changes to messages on screen too.
async function refreshShown(room) {
  const session = state.session;
  const messages = await fetchMessages(room.name, `limit=${GAP_PAGE_SIZE}`);
  if (messages === null || session !== state.session || state.rooms.get(room.name) !== room) return;
  for (const message of messages) {
    const id = messageId(message.id);
    const line = id === null ? null : listOf(room).querySelector(`[data-id="${id}"]`);
    if (line && line.classList.contains('msg')) showMessageState(line, message);
  }
}

// fillGap fetches the messages an incomplete resume left out: those after since and before first.
async function fillGap(room, since, first) {
  const session = state.session;
  let before = first;
  for (let page = 0; page < GAP_MAX_PAGES; page += 1) {
    const messages = await fetchMessages(room.name, `before=${before}&limit=${GAP_PAGE_SIZE}`);
    if (session !== state.session || state.rooms.get(room.name) !== room) return;
    if (messages === null) {
      systemLine('Some missed messages could not be loaded: scroll up to see them.', true, room);
      return;
    }
    const page = gapPage(messages, since, first, GAP_PAGE_SIZE);
    for (const message of page.missing) addMessage(room, message, 'gap');
    if (page.before === null) return;
    before = page.before;
  }
}

// ---- start --------------------------------------------------------------------------------------

function boot() {
  els.authForm.addEventListener('submit', onAuthSubmit);
  els.messageForm.addEventListener('submit', onSend);
  els.input.addEventListener('input', onInput);
  els.input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.editing) stopEditing();
  });
  els.joinForm.addEventListener('submit', onJoinSubmit);
  els.joinInput.addEventListener('input', () => {
    if (els.joinInput.hasAttribute('aria-invalid')) {
      els.joinInput.removeAttribute('aria-invalid');
      els.joinError.textContent = '';
    }
  });
  els.presenceToggle.addEventListener('click', togglePresence);
  els.messages.addEventListener('scroll', onScroll, { passive: true });
  new ResizeObserver(keepPinned).observe(els.messages);
  els.logout.addEventListener('click', () => logOut(false));
  els.logoutAll.addEventListener('click', () => logOut(true));
  els.accountMenu.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && els.accountMenu.open) {
      els.accountMenu.open = false;
      els.accountButton.focus();
    }
  });
  window.addEventListener('storage', adoptStoredToken);
  els.reconnect.addEventListener('click', () => {
    state.attempt = 0;
    connect();
  });
  window.addEventListener('online', () => {
    // Back online: try now rather than at the end of a long backoff.
    if (state.token && !state.ws && state.timer) connect();
  });
  document.addEventListener('visibilitychange', () => {
    // Timers sleep with the computer: after a wake, a refresh may be due already.
    if (document.visibilityState === 'visible' && state.token) scheduleRefresh();
    markRead();
  });
  // What came while the page was in the background is read once it is looked at again.
  window.addEventListener('focus', markRead);
  els.memberForm.addEventListener('submit', onMemberSubmit);
  els.memberInput.addEventListener('input', () => {
    els.memberError.textContent = '';
    els.memberInput.removeAttribute('aria-invalid');
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
  resetRooms();
  setStatus('connecting');
  showChat();
  const session = state.session;
  checkToken().then((verdict) => {
    if (session !== state.session) return;
    if (verdict === 'unauthorized') {
      endSession(SESSION_ENDED);
      return;
    }
    scheduleRefresh();
    connect();
  });
}

boot();
