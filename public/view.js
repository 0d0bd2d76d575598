// The page's DOM pieces: each function builds or updates elements from plain values, and knows nothing
// of the connection or the page's state (app.js). Text always goes in with textContent, never as HTML.

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
const SYSTEM_START = 'msg-system msg-start self-center px-3 py-0.5 text-center text-xs font-medium text-slate-600';
const LOADING_OLDER = 'loading-older self-center text-xs text-slate-600';

const ROOM_ITEM = 'room flex shrink-0 items-center rounded-full bg-slate-100 text-slate-800 ring-1 ring-slate-300 data-current:bg-indigo-600 data-current:text-white data-current:ring-indigo-600 md:rounded-lg';
const ROOM_BUTTON = 'room-button flex min-h-8 min-w-0 flex-1 cursor-pointer items-center gap-1.5 rounded-full py-1 pl-3 pr-2 text-left text-sm font-medium md:rounded-lg';
const ROOM_NAME = 'room-name min-w-0 flex-1 truncate before:opacity-60 before:content-["#"_/_""]';
const DM_NAME = 'room-name min-w-0 flex-1 truncate before:opacity-60 before:content-["@"_/_""]';
const UNREAD = 'unread min-w-5 shrink-0 rounded-full bg-red-600 px-1.5 text-center text-xs leading-5 font-semibold text-white tabular-nums';
const ROOM_LEAVE = 'room-leave mr-0.5 flex size-7 shrink-0 cursor-pointer items-center justify-center rounded-full text-lg leading-none opacity-70 hover:bg-black/10 hover:opacity-100 md:rounded-md';
const PRESENCE_USER = 'presence-user max-w-full truncate rounded-full bg-slate-100 px-2 py-0.5 text-sm text-slate-800 md:rounded-md md:bg-transparent md:px-1';
const EDITED = 'msg-edited italic opacity-80';
const TOMBSTONE = 'msg-text mt-0.5 italic opacity-80';
const TOOLS = 'msg-tools mt-0.5 flex flex-wrap items-center gap-1 text-xs';
const TOOL = 'msg-tool cursor-pointer rounded px-1.5 py-0.5 text-slate-600 hover:bg-slate-200 hover:text-slate-900';
const REACTION = 'reaction cursor-pointer rounded-full bg-white px-2 py-0.5 text-slate-800 ring-1 ring-slate-300 hover:bg-slate-100 aria-pressed:bg-indigo-50 aria-pressed:ring-indigo-500';
const PICKER = 'msg-picker flex flex-wrap gap-0.5';
const PRESENCE_DM = 'presence-dm max-w-full cursor-pointer truncate text-left underline-offset-2 hover:underline focus-visible:underline';

// messageLine builds the line of a message: author, time (see setTime) and text.
export function messageLine(author, text, own) {
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
  // dir=auto isolates names and texts: one written right to left must not reorder what stands beside it.
  who.dir = 'auto';
  const time = document.createElement('time');
  time.className = own ? TIME_OWN : TIME_OTHER;
  meta.append(who, time);

  const body = document.createElement('p');
  body.className = TEXT;
  body.textContent = text;
  body.dir = 'auto';

  bubble.append(meta, body);
  line.append(bubble);
  return line;
}

// showState shows a message's current state on its line: its text, or that it was deleted; whether it was
// edited; its reactions, as buttons that add or take back one's own; when the message is one's own, a
// button to edit it; and when it is one's own or the viewer owns the room (owner), a button to delete it.
// me is the viewer's user id; act(kind, emoji) asks for a change ('edit', 'delete', 'react', 'unreact').
export function showState(line, message, me, own, owner, act) {
  const body = line.querySelector('.msg-text');
  const deleted = message.deleted === true;
  // The buttons say which message they act on: its text describes them.
  const key = `${message.room}-${message.id}`;
  body.id = `msg-${key}`;
  if (deleted) {
    line.dataset.deleted = 'true';
    body.className = TOMBSTONE;
    body.textContent = 'This message was deleted.';
  } else if (typeof message.text === 'string') {
    body.textContent = message.text;
  }
  const meta = line.querySelector('.msg-time').parentElement;
  let edited = meta.querySelector('.msg-edited');
  if (message.edited_at && !deleted) {
    if (!edited) {
      edited = document.createElement('span');
      edited.className = EDITED;
      meta.append(edited);
    }
    edited.textContent = '(edited)';
    edited.title = new Date(message.edited_at).toLocaleString();
  } else if (edited) {
    edited.remove();
  }

  let tools = line.querySelector('.msg-tools');
  if (!tools) {
    tools = document.createElement('div');
    tools.className = TOOLS;
    line.append(tools);
  }
  // The buttons are made again: the one that had the focus gets it back, so that a keyboard user who
  // reacted, or whose line someone else changed, stays where they were.
  const focused = tools.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  const reactions = Array.isArray(message.reactions) ? message.reactions : [];
  const buttons = [];
  if (!deleted) {
    for (const r of reactions) {
      if (!r || typeof r.emoji !== 'string') continue;
      const mine = Array.isArray(r.users) && r.users.some((u) => String(u) === String(me));
      const b = toolButton(REACTION, `${r.emoji} ${r.count}`, () => act(mine ? 'unreact' : 'react', r.emoji));
      b.dataset.emoji = r.emoji;
      b.setAttribute('aria-pressed', String(mine));
      b.setAttribute('aria-label', `${r.emoji} ${r.count}${mine ? ', yours: take it back' : ''}`);
      buttons.push(b);
    }
    const picker = document.createElement('div');
    picker.className = PICKER;
    picker.hidden = true;
    picker.id = `pick-${key}`;
    for (const emoji of EMOJI) {
      const b = toolButton(TOOL, emoji, () => {
        picker.hidden = true;
        act('react', emoji);
      });
      b.dataset.pick = emoji;
      b.setAttribute('aria-label', `React with ${emoji}`);
      picker.append(b);
    }
    const react = toolButton(TOOL, 'React', () => {
      picker.hidden = !picker.hidden;
      react.setAttribute('aria-expanded', String(!picker.hidden));
    });
    react.dataset.tool = 'react';
    react.setAttribute('aria-expanded', 'false');
    react.setAttribute('aria-controls', picker.id);
    picker.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return;
      picker.hidden = true;
      react.setAttribute('aria-expanded', 'false');
      react.focus();
    });
    buttons.push(react);
    if (own) {
      const edit = toolButton(TOOL, 'Edit', () => act('edit'));
      edit.dataset.tool = 'edit';
      buttons.push(edit);
    }
    if (own || owner) {
      const del = toolButton(TOOL, 'Delete', () => {
        // Two steps, without a dialog: the first click asks, the second deletes.
        if (del.dataset.confirm === 'true') {
          act('delete');
          return;
        }
        del.dataset.confirm = 'true';
        del.textContent = 'Delete? Click again';
      });
      del.dataset.tool = 'delete';
      del.addEventListener('blur', () => {
        delete del.dataset.confirm;
        del.textContent = 'Delete';
      });
      buttons.push(del);
    }
    buttons.push(picker);
  }
  for (const b of buttons) {
    if (b.tagName === 'BUTTON') b.setAttribute('aria-describedby', body.id);
  }
  tools.replaceChildren(...buttons);
  if (focused) {
    const again = tools.querySelector(focused);
    if (again) again.focus();
  }
}

// focusKey returns a selector that finds, among a line's remade buttons, the one like el.
function focusKey(el) {
  if (el.dataset.tool) return `[data-tool="${el.dataset.tool}"]`;
  if (el.dataset.emoji) return `.reaction[data-emoji="${el.dataset.emoji}"]`;
  return null;
}

// EMOJI are the reactions the server takes (app.Emoji).
export const EMOJI = ['👍', '👎', '❤️', '😂', '😮', '😢', '🎉', '🙏', '👀', '🔥', '✅', '👏'];

function toolButton(className, text, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

// setTime shows at (RFC 3339) in line's time element, as hours and minutes, with the full date as its
// title; a missing or bad date leaves it empty.
export function setTime(line, at) {
  const time = line.querySelector('.msg-time');
  const date = typeof at === 'string' ? new Date(at) : null;
  if (!time || !date || Number.isNaN(date.getTime())) return;
  time.dateTime = at;
  time.title = date.toLocaleString();
  time.textContent = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// markFailed marks line as not sent, with text saying why.
export function markFailed(line, text) {
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

function note(text, className) {
  const line = document.createElement('p');
  line.className = className;
  line.textContent = text;
  return line;
}

// systemNote builds a line about the connection, or an error.
export function systemNote(text, isError) {
  return note(text, isError ? SYSTEM_ERROR : SYSTEM_INFO);
}

// startNote builds the line that says a room's first message is the one below.
export function startNote(room) {
  return note(`This is the beginning of the room #${room}.`, SYSTEM_START);
}

// loadingNote builds the line shown while older messages load.
export function loadingNote() {
  return note('Loading older messages…', LOADING_OLDER);
}

// roomItem builds a room's entry in the room list: a button that opens it (with its unread count) and
// one that leaves it. It returns the elements showRoomItem updates.
export function roomItem(name, onOpen, onLeave) {
  const item = document.createElement('li');
  item.className = ROOM_ITEM;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = ROOM_BUTTON;
  button.dataset.room = name;
  const label = document.createElement('span');
  label.className = ROOM_NAME;
  label.textContent = name;
  const badge = document.createElement('span');
  badge.className = UNREAD;
  badge.hidden = true;
  badge.textContent = '0';
  const badgeLabel = document.createElement('span');
  badgeLabel.className = 'sr-only';
  badgeLabel.hidden = true;
  badgeLabel.textContent = ' unread';
  button.append(label, badge, badgeLabel);
  button.addEventListener('click', onOpen);

  const leave = document.createElement('button');
  leave.type = 'button';
  leave.className = ROOM_LEAVE;
  leave.dataset.leave = name;
  leave.setAttribute('aria-label', `Leave ${name}`);
  leave.title = `Leave #${name}`;
  leave.textContent = '×';
  leave.addEventListener('click', onLeave);

  item.append(button, leave);
  return { item, button, label, badge, badgeLabel, leave };
}

// showRoomItem shows whether a room is the current one, its name (a DM's, the other user's), its unread
// count, and its leave button unless it is the only room or a DM, which cannot be left.
export function showRoomItem(room, current, only) {
  const dm = room.with && typeof room.with.name === 'string' ? room.with.name : '';
  room.label.className = dm ? DM_NAME : ROOM_NAME;
  room.label.textContent = dm || room.name;
  if (current) {
    room.button.setAttribute('aria-current', 'true');
    room.item.dataset.current = 'true';
  } else {
    room.button.removeAttribute('aria-current');
    delete room.item.dataset.current;
  }
  room.badge.textContent = String(room.unread);
  room.badge.hidden = room.unread === 0;
  room.badgeLabel.hidden = room.unread === 0;
  room.leave.hidden = only || room.kind === 'dm';
}

// presenceItem builds a user's entry in the online list; another user's name is a button that opens a
// direct message with them (onMessage).
export function presenceItem(key, name, self, onMessage) {
  const li = document.createElement('li');
  li.className = PRESENCE_USER;
  li.dataset.userId = key;
  li.dir = 'auto';
  if (self || !onMessage || !name) {
    if (self) li.dataset.self = 'true';
    li.textContent = name || 'unknown';
    return li;
  }
  const button = document.createElement('button');
  button.type = 'button';
  button.className = PRESENCE_DM;
  button.dataset.dm = name;
  button.textContent = name;
  button.title = `Send a direct message to ${name}`;
  button.setAttribute('aria-label', `Send a direct message to ${name}`);
  button.addEventListener('click', () => onMessage(name));
  li.append(button);
  return li;
}

// memberText says in words what a member event of a room's log did, or '' for anything else.
export function memberText(event) {
  const name = (who) => (who && typeof who.name === 'string' ? who.name : 'someone');
  switch (event.kind) {
    case 'member_added':
      return `${name(event.from)} added ${name(event.user)} to the room.`;
    case 'member_removed':
      return `${name(event.from)} removed ${name(event.user)} from the room.`;
    case 'member_left':
      return `${name(event.user)} left the room.`;
    default:
      return '';
  }
}

// typingText says who is typing, from their names: none, one, two, three, or two and a count.
export function typingText(names) {
  // Each name between Unicode isolates (FSI … PDI): a right-to-left name must not reorder the sentence.
  const n = names.map((name) => `\u2068${name}\u2069`);
  if (n.length === 1) return `${n[0]} is typing…`;
  if (n.length === 2) return `${n[0]} and ${n[1]} are typing…`;
  if (n.length === 3) return `${n[0]}, ${n[1]} and ${n[2]} are typing…`;
  if (n.length > 3) return `${n[0]}, ${n[1]} and ${n.length - 2} others are typing…`;
  return '';
}
