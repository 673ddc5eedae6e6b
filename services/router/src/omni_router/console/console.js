// The operator console: signs in with an operator token, keeps the chat list current from the event stream
// (GET /api/events), shows one conversation at a time and offers what GetChatActions allows.
// Everything the page shows comes from the operator API; a chat the API refuses (404, chat.revoked) leaves it.

const TOKEN_KEY = "omni.console.token";
const EVENT_KINDS = ["chat.offered", "chat.assigned", "chat.revoked", "chat.closed", "message.new", "message.status"];
// A receipt never moves a message backwards; `failed` (and a replay after it) always applies.
const STATUS_RANK = { queued: 0, sent: 1, delivered: 2, read: 3 };
const PROVIDERS = {
  telegram: ["TG", "Telegram"],
  whatsapp: ["WA", "WhatsApp"],
  twilio: ["WA", "WhatsApp (Twilio)"],
  messenger: ["M", "Messenger"],
};
const PAGE_SIZE = 30;
const SUPERVISOR_POLL_MS = 5000;
const REVOKE_TEXT = {
  taken: "was taken by someone else",
  transferred: "was transferred",
  offer_timeout: "is no longer offered to you (the offer timed out)",
  operator_offline: "went back to its queue",
  declined: "was declined",
};

const $ = (id) => document.getElementById(id);

// What the console's other modules (workplace.js: notes, labels, canned responses, search) plug in: handlers of
// more notification kinds, and additions to what this module draws. Each is called with what it is about.
const plugins = {
  handlers: {}, // event kind -> (note, data) => ..., like HANDLERS
  chatBadges: [], // (chat) -> Node | null, added under a chat's name in the list
  listFilters: [], // (chat) -> bool, all must pass for a chat to be listed
  chatShown: [], // (chat) -> void, when the open chat's header is drawn
  messageElements: [], // (message) -> Node | null: the first element given replaces the usual bubble
};

const state = {
  token: null,
  me: null,
  generation: 0, // bumped on sign-out: answers to requests of an earlier session are dropped
  channels: new Map(),
  queues: new Map(),
  operators: new Map(),
  chats: new Map(),
  closedCursor: null,
  filter: "new",
  view: "desk",
  open: null, // the conversation shown: {id, messages: Map, cursor, loading, actions, blobs: Map}
  statuses: new Map(), // statuses heard before the message they belong to was on the page
  seen: new Set(),
  events: null,
  lastEventId: null,
  eventCount: 0,
  reconnectDelay: 1000,
  reconnectTimer: null,
  supervisorTimer: null,
  refreshing: null,
  readTimer: null,
  pendingReply: null, // {chatId, text, key}: a reply not yet taken for sure, and its Idempotency-Key
};

class ApiError extends Error {
  constructor(status, code, detail, data = null) {
    super(detail);
    this.status = status;
    this.code = code;
    this.data = data; // the whole error answer (e.g. `window_ends_at` of a 422 template_required)
  }
}

// ---------------------------------------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return el;
}

function toast(text) {
  const el = h("div", { class: "toast", text });
  $("toasts").append(el);
  setTimeout(() => el.remove(), 5000);
}

// Runs an async UI action; problems become a toast, never an uncaught error in the page.
function guarded(action) {
  return (...args) => {
    Promise.resolve()
      .then(() => action(...args))
      .catch((error) => {
        if (error instanceof ApiError && (error.code === "stale" || error.status === 401)) return;
        toast(error instanceof ApiError ? error.message : "Something went wrong. Try again.");
      });
  };
}

function formatTime(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const today = new Date();
  if (at.toDateString() === today.toDateString()) {
    return at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  return at.toLocaleDateString([], { day: "numeric", month: "short" });
}

function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function formatSize(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function contactName(chat) {
  return chat.contact?.name || "Unknown contact";
}

function channelIcon(channelId) {
  const channel = state.channels.get(channelId);
  const provider = channel?.provider ?? "";
  const [letters, label] = PROVIDERS[provider] ?? [(provider[0] ?? "?").toUpperCase(), provider || "channel"];
  return h("span", {
    class: "channel-icon",
    "data-provider": provider,
    title: channel ? `${label}: ${channel.name}` : label,
    "aria-label": label,
    role: "img",
    text: letters,
  });
}

function operatorName(id) {
  if (!id) return "";
  if (id === state.me?.id) return "me";
  return state.operators.get(id)?.name ?? id;
}

// -------------------------------------------------------------------------------------------------- API

async function api(path, { method = "GET", body, headers: extra = {} } = {}) {
  const generation = state.generation;
  const headers = { ...extra, Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached right now.");
  }
  const data = await response.json().catch(() => null);
  if (generation !== state.generation) throw new ApiError(0, "stale", "signed out meanwhile");
  if (response.status === 401) {
    signOut("The server does not accept this token. Sign in again.");
    throw new ApiError(401, "unauthorized", "not signed in");
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error ?? "http_error", data?.detail ?? `HTTP ${response.status}`, data);
  }
  return data;
}

// The image types shown inline: raster formats, which cannot carry script (the router serves these inline too).
const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function baseType(contentType) {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}

async function fileUrl(fileId) {
  const open = state.open;
  if (!open) throw new ApiError(0, "stale", "no conversation");
  if (!open.blobs.has(fileId)) {
    const generation = state.generation;
    const loading = fetch(`/api/files/${encodeURIComponent(fileId)}`, {
      headers: { Authorization: `Bearer ${state.token}` },
    }).then(async (response) => {
      if (!response.ok || generation !== state.generation) {
        throw new ApiError(response.status, "file", "The file cannot be loaded.");
      }
      // Customer content: a blob URL runs in this page's origin, so only a raster image keeps its type; anything
      // else (SVG and HTML can hold script) becomes plain bytes, which a browser downloads instead of running.
      const type = baseType(response.headers.get("Content-Type"));
      const bytes = await response.blob();
      return URL.createObjectURL(new Blob([bytes], { type: INLINE_TYPES.has(type) ? type : "application/octet-stream" }));
    });
    open.blobs.set(fileId, loading);
    loading.catch(() => open.blobs.delete(fileId));
  }
  return open.blobs.get(fileId);
}

// ------------------------------------------------------------------------------------- signing in and out

async function signIn(token) {
  state.token = token;
  $("signin-error").textContent = "";
  const me = await api("/api/operator/me");
  sessionStorage.setItem(TOKEN_KEY, token);
  state.me = me;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("me").textContent = `${me.name}${me.role === "supervisor" ? " (supervisor)" : ""}`;
  $("view-toggle").hidden = me.role !== "supervisor";
  showStatus(me.status);
  await loadDirectory();
  openEvents();
  await refreshChats();
}

function signOut(message = "") {
  state.generation += 1;
  disconnectEvents();
  clearTimeout(state.reconnectTimer);
  clearInterval(state.supervisorTimer);
  closeConversation();
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, { token: null, me: null, chats: new Map(), closedCursor: null, view: "desk", lastEventId: null });
  state.statuses.clear();
  state.seen.clear();
  $("chat-list").replaceChildren();
  $("supervisor").hidden = true;
  $("desk").hidden = false;
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("token").value = "";
  $("token").focus();
  document.title = "Omnichannel console";
}

async function loadDirectory() {
  const found = await api("/api/directory");
  state.channels = new Map(found.channels.map((c) => [c.id, c]));
  state.queues = new Map(found.queues.map((q) => [q.id, q]));
  state.operators = new Map(found.operators.map((o) => [o.id, o]));
}

// ------------------------------------------------------------------------------------------------ status

function showStatus(status) {
  $("status").value = status;
  $("status-dot").dataset.status = status;
}

async function changeStatus() {
  const wanted = $("status").value;
  try {
    const answer = await api("/api/operator/status", { method: "PUT", body: { status: wanted } });
    showStatus(answer.status);
  } catch (error) {
    const current = await api("/api/operator/status").catch(() => null);
    if (current) showStatus(current.status);
    throw error;
  }
}

// ----------------------------------------------------------------------------------------- event stream

function setLive(which, text) {
  $("live").dataset.state = which;
  $("live").textContent = text;
}

// The stream's credential is a ticket, never the token: EventSource cannot send the Authorization header, and a
// URL ends up in logs. A ticket opens one stream, so every (re)connection first gets a fresh one.
async function connectEvents() {
  const generation = state.generation;
  disconnectEvents();
  setLive("connecting", "Connecting…");
  const { ticket } = await api("/api/events/ticket", { method: "POST" });
  if (generation !== state.generation) return;
  disconnectEvents();
  // A stream this page opens again asks for the replay of what it missed with `last_event_id`.
  const resume = state.lastEventId ? `&last_event_id=${encodeURIComponent(state.lastEventId)}` : "";
  const source = new EventSource(`/api/events?ticket=${encodeURIComponent(ticket)}${resume}`);
  state.events = source;
  source.addEventListener("open", () => {
    state.reconnectDelay = 1000;
    setLive("live", "Live");
    // Whatever happened while the stream was down is read back from the API.
    guarded(refreshChats)();
  });
  for (const kind of [...EVENT_KINDS, ...Object.keys(plugins.handlers)]) {
    source.addEventListener(kind, (event) => {
      if (event.lastEventId) state.lastEventId = event.lastEventId;
      onEvent(event.data);
    });
  }
  source.addEventListener("error", () => {
    if (state.events !== source) return;
    // The browser would reconnect by itself with the spent ticket: this page does it, with a new one.
    if (source.readyState === EventSource.CLOSED) setLive("down", "Offline, retrying…");
    else setLive("reconnecting", "Reconnecting…");
    scheduleReconnect();
  });
}

// Connects, or keeps trying; a 401 on the way signs out (api() does that) instead of retrying forever.
function openEvents() {
  connectEvents().catch((error) => {
    if (!(error instanceof ApiError && (error.code === "stale" || error.status === 401))) scheduleReconnect();
  });
}

function disconnectEvents() {
  if (state.events) state.events.close();
  state.events = null;
}

function scheduleReconnect() {
  disconnectEvents();
  clearTimeout(state.reconnectTimer);
  const delay = state.reconnectDelay;
  state.reconnectDelay = Math.min(delay * 2, 30000);
  state.reconnectTimer = setTimeout(openEvents, delay);
}

function onEvent(raw) {
  let note;
  try {
    note = JSON.parse(raw);
  } catch {
    return;
  }
  if (!note || typeof note !== "object" || !note.chat_id) return;
  if (note.event_id) {
    if (state.seen.has(note.event_id)) return;
    state.seen.add(note.event_id);
    if (state.seen.size > 2000) state.seen.delete(state.seen.values().next().value);
  }
  state.eventCount += 1;
  const handler = HANDLERS[note.event] ?? plugins.handlers[note.event];
  if (handler) guarded(handler)(note, note.data ?? {});
}

const HANDLERS = {
  "chat.offered": (note, data) => {
    const known = state.chats.get(note.chat_id);
    // An offer moved on to this operator carries no message: the API has the true unread count.
    if (!known && !data.message) return reloadChat(note.chat_id);
    const incoming = data.message?.direction === "incoming";
    const chat = { ...(data.chat ?? known ?? {}), id: note.chat_id, status: "new" };
    chat.unread_count = known ? known.unread_count + (incoming ? 1 : 0) : Math.max(data.chat?.unread_count ?? 0, incoming ? 1 : 0);
    if (data.message?.created_at) chat.last_message_at = data.message.created_at;
    if (!chat.contact || !chat.channel_id) return refreshChats();
    upsertChat(chat);
    if (data.message) messageArrived(data.message);
  },
  "chat.assigned": (note, data) => {
    const known = state.chats.get(note.chat_id);
    const base = data.chat ?? known;
    if (!base) return refreshChats();
    upsertChat({ ...base, ...(known ? { unread_count: known.unread_count } : {}), status: "assigned", operator_id: note.operator_id });
    if (data.reason === "transferred") toast(`${contactName(base)} was transferred to you.`);
    if (state.open?.id === note.chat_id) return loadActions(note.chat_id);
  },
  "chat.revoked": async (note, data) => {
    const chat = state.chats.get(note.chat_id);
    if (state.me?.role === "supervisor") return reloadChat(note.chat_id);
    const why = REVOKE_TEXT[data.reason] ?? "is no longer yours";
    if (chat) removeChat(note.chat_id, `${contactName(chat)} ${why}.`);
  },
  "chat.closed": (note) => {
    const chat = state.chats.get(note.chat_id);
    if (!chat) return;
    upsertChat({ ...chat, status: "closed" });
    if (state.open?.id === note.chat_id) return loadActions(note.chat_id);
  },
  "message.new": (note, data) => {
    const chat = state.chats.get(note.chat_id);
    if (!chat || !data.message) return refreshChats();
    const incoming = data.message.direction === "incoming";
    const seeing = state.open?.id === note.chat_id && !document.hidden;
    upsertChat({
      ...chat,
      last_message_at: data.message.created_at ?? chat.last_message_at,
      unread_count: chat.unread_count + (incoming && !seeing ? 1 : 0),
    });
    messageArrived(data.message);
  },
  "message.status": (note, data) => {
    if (!data.message_id) return;
    if (data.attachment_index !== undefined) {
      if (state.open?.id === note.chat_id) return refetchMessage(note.chat_id, data.message_id);
      return;
    }
    const change = { status: data.status, failure_reason: data.failure_reason ?? null };
    const message = state.open?.id === note.chat_id ? state.open.messages.get(data.message_id) : null;
    if (message) {
      putMessage(withStatus(message, change));
    } else {
      state.statuses.set(data.message_id, change);
    }
  },
};

// ------------------------------------------------------------------------------------------- chat list

async function refreshChats() {
  // One refresh at a time; events applied while one ran make it run again, so it never undoes them.
  if (state.refreshing) {
    state.refreshing.again = true;
    return state.refreshing.done;
  }
  const run = { again: false };
  state.refreshing = run;
  run.done = (async () => {
    try {
      for (let round = 0; round < 3; round += 1) {
        run.again = false;
        const seenBefore = state.eventCount;
        const [open, closed] = await Promise.all([
          api("/api/chats?limit=200"),
          api("/api/chats?status=closed&limit=50"),
        ]);
        if (state.eventCount !== seenBefore || run.again) continue;
        state.chats = new Map([...open.items, ...closed.items].map((c) => [c.id, c]));
        state.closedCursor = closed.next_cursor;
        if (state.open && !state.chats.has(state.open.id)) await reloadChat(state.open.id);
        renderList();
        return;
      }
    } finally {
      state.refreshing = null;
    }
  })();
  return run.done;
}

async function moreClosed() {
  if (!state.closedCursor) return;
  const page = await api(`/api/chats?status=closed&limit=50&cursor=${encodeURIComponent(state.closedCursor)}`);
  for (const chat of page.items) if (!state.chats.has(chat.id)) state.chats.set(chat.id, chat);
  state.closedCursor = page.next_cursor;
  renderList();
}

// The chat as the API shows it now; a 404 takes it off the page.
async function reloadChat(id) {
  try {
    const chat = await api(`/api/chats/${encodeURIComponent(id)}`);
    upsertChat(chat);
    if (state.open?.id === id) await loadActions(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      removeChat(id, "This chat is no longer available to you.");
      return;
    }
    throw error;
  }
}

function upsertChat(chat) {
  state.chats.set(chat.id, chat);
  renderList();
  if (state.open?.id === chat.id) renderChatHeader(chat);
}

function removeChat(id, message) {
  const had = state.chats.delete(id);
  if (state.open?.id === id) {
    closeConversation();
    if (message) toast(message);
  } else if (had && message) {
    toast(message);
  }
  renderList();
}

function matches(chat, filter) {
  if (filter === "new") return chat.status === "new";
  if (filter === "mine") return chat.status === "assigned" && chat.operator_id === state.me?.id;
  return chat.status === "closed";
}

function byRecent(a, b) {
  return (b.last_message_at ?? b.created_at ?? "").localeCompare(a.last_message_at ?? a.created_at ?? "");
}

function renderList() {
  if (!state.me) return;
  const list = $("chat-list");
  const focusedId = document.activeElement?.closest?.(".chat-item")?.dataset.chatId;
  const chats = [...state.chats.values()];
  for (const filter of ["new", "mine", "closed"]) {
    document.querySelector(`[data-count="${filter}"]`).textContent = chats.filter((c) => matches(c, filter)).length;
  }
  const shown = chats.filter((c) => matches(c, state.filter) && plugins.listFilters.every((f) => f(c))).sort(byRecent);
  list.replaceChildren(...shown.map(chatItem));
  $("list-empty").hidden = shown.length > 0;
  $("more-closed").hidden = !(state.filter === "closed" && state.closedCursor);
  if (focusedId) list.querySelector(`[data-chat-id="${CSS.escape(focusedId)}"]`)?.focus();
  const unread = chats.filter((c) => c.status !== "closed" && c.unread_count > 0).length;
  document.title = unread ? `(${unread}) Omnichannel console` : "Omnichannel console";
  if (state.view === "supervisor") renderAllChats();
}

function chatItem(chat) {
  const channel = state.channels.get(chat.channel_id);
  const sub = [channel?.name, chat.status === "assigned" && chat.operator_id !== state.me?.id ? operatorName(chat.operator_id) : null]
    .filter(Boolean)
    .join(" · ");
  const unread = chat.unread_count > 0 && chat.status !== "closed";
  return h(
    "li",
    {},
    h(
      "button",
      {
        type: "button",
        class: "chat-item",
        "data-chat-id": chat.id,
        "aria-current": state.open?.id === chat.id ? "true" : "false",
        onclick: () => guarded(openChat)(chat.id),
      },
      channelIcon(chat.channel_id),
      h(
        "span",
        { class: "chat-main" },
        h("span", { class: "chat-name", text: contactName(chat) }),
        h("span", { class: "chat-sub", text: sub }),
        plugins.chatBadges.map((badge) => badge(chat)),
      ),
      h(
        "span",
        { class: "chat-meta" },
        h("time", { datetime: chat.last_message_at ?? "", text: formatTime(chat.last_message_at ?? chat.created_at) }),
        unread ? h("span", { class: "badge", "aria-label": `${chat.unread_count} unread`, text: chat.unread_count }) : null,
      ),
    ),
  );
}

function setFilter(filter) {
  state.filter = filter;
  for (const tab of document.querySelectorAll(".filter")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.filter === filter));
  }
  renderList();
}

// ---------------------------------------------------------------------------------------- conversation

async function openChat(id) {
  const chat = state.chats.get(id);
  if (!chat) return;
  // Opening the shown chat again reads it afresh but keeps the images already fetched.
  const blobs = state.open?.id === id ? state.open.blobs : null;
  if (!blobs) closeConversation();
  state.open = { id, messages: new Map(), cursor: null, loading: false, actions: [], blobs: blobs ?? new Map() };
  $("no-chat").hidden = true;
  $("chat-view").hidden = false;
  $("desk").classList.add("show-conversation");
  $("message-items").replaceChildren();
  $("history").textContent = "Loading…";
  renderChatHeader(chat);
  renderList();
  document.dispatchEvent(new CustomEvent("console:chat-opened", { detail: { id, chat } }));
  try {
    const [page] = await Promise.all([
      api(`/api/chats/${encodeURIComponent(id)}/messages?limit=${PAGE_SIZE}`),
      loadActions(id),
    ]);
    if (state.open?.id !== id) return;
    state.open.cursor = page.next_cursor;
    for (const message of page.items) putMessage(message);
    scrollToEnd();
    showHistoryState();
    await markRead(id);
    await fillViewport(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      removeChat(id, "This chat is no longer available to you.");
      return;
    }
    throw error;
  }
}

function closeConversation() {
  const open = state.open;
  state.open = null;
  if (open) {
    for (const url of open.blobs.values()) url.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  }
  $("chat-view").hidden = true;
  $("no-chat").hidden = false;
  $("desk").classList.remove("show-conversation");
  $("message-items").replaceChildren();
  $("reply").value = "";
  if (state.me) renderList();
  if (open) document.dispatchEvent(new CustomEvent("console:chat-closed", { detail: { id: open.id } }));
}

function backToList() {
  const id = state.open?.id;
  $("desk").classList.remove("show-conversation");
  if (id) document.querySelector(`.chat-item[data-chat-id="${CSS.escape(id)}"]`)?.focus();
}

function renderChatHeader(chat) {
  $("chat-name").textContent = contactName(chat);
  const channel = state.channels.get(chat.channel_id);
  const queue = state.queues.get(chat.queue_id);
  const holder = chat.status === "assigned" ? `with ${operatorName(chat.operator_id)}` : chat.status;
  $("chat-sub").textContent = [channel?.name, queue?.name, holder].filter(Boolean).join(" · ");
  $("chat-channel").replaceWith(Object.assign(channelIcon(chat.channel_id), { id: "chat-channel" }));
  for (const shown of plugins.chatShown) shown(chat);
}

async function loadActions(id) {
  const answer = await api(`/api/chats/${encodeURIComponent(id)}/actions`);
  if (state.open?.id !== id) return;
  state.open.actions = answer.actions;
  renderActions();
}

function renderActions() {
  const open = state.open;
  const allowed = new Set(open?.actions ?? []);
  const buttons = [];
  if (allowed.has("accept")) buttons.push(h("button", { type: "button", class: "primary", "data-action": "accept", onclick: guarded(accept), text: "Accept" }));
  if (allowed.has("decline")) buttons.push(h("button", { type: "button", "data-action": "decline", onclick: guarded(decline), text: "Decline" }));
  if (allowed.has("transfer")) buttons.push(h("button", { type: "button", "data-action": "transfer", onclick: guarded(openTransfer), text: "Transfer" }));
  if (allowed.has("close")) buttons.push(h("button", { type: "button", class: "danger", "data-action": "close", onclick: guarded(closeChat), text: "Close" }));
  $("chat-actions").replaceChildren(...buttons);
  const canSend = allowed.has("send");
  $("reply").disabled = !canSend;
  $("send").disabled = !canSend;
  $("reply").placeholder = canSend
    ? "Write a reply. Enter sends, Shift+Enter adds a line."
    : state.chats.get(open?.id)?.status === "closed"
      ? "This chat is closed."
      : "You cannot reply in this chat.";
}

// `arrived`: a customer message came in while the conversation was on screen (not counted as unread here).
async function markRead(id, arrived = false) {
  const chat = state.chats.get(id);
  if (!chat || !(chat.unread_count || arrived) || !state.open?.actions.includes("read")) return;
  await api(`/api/chats/${encodeURIComponent(id)}/read`, { method: "POST" });
  const now = state.chats.get(id);
  if (now) upsertChat({ ...now, unread_count: 0 });
}

function scheduleRead(id, arrived = false) {
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(() => guarded(markRead)(id, arrived), 300);
}

function messageArrived(message) {
  if (state.open?.id !== message.chat_id) return;
  const stick = nearEnd();
  putMessage(message);
  if (stick) scrollToEnd();
  if (message.direction === "incoming" && !document.hidden) scheduleRead(message.chat_id, true);
}

function withStatus(message, change) {
  const current = message.status;
  const applies =
    change.status === "failed" ||
    current === "failed" ||
    (STATUS_RANK[change.status] ?? -1) > (STATUS_RANK[current] ?? -1);
  if (!applies) return message;
  return { ...message, status: change.status, failure_reason: change.status === "failed" ? change.failure_reason : null };
}

// Adds or replaces one message in the open conversation, in id (= time) order.
function putMessage(message) {
  const open = state.open;
  if (!open || message.chat_id !== open.id) return;
  const early = state.statuses.get(message.id);
  if (early) {
    state.statuses.delete(message.id);
    message = withStatus(message, early);
  }
  open.messages.set(message.id, message);
  const items = $("message-items");
  const element = messageElement(message);
  const existing = items.querySelector(`[data-message-id="${CSS.escape(message.id)}"]`);
  if (existing) {
    existing.replaceWith(element);
    return;
  }
  const after = [...items.children].find((el) => el.dataset.messageId > message.id);
  items.insertBefore(element, after ?? null);
}

function messageElement(message) {
  const drawn = plugins.messageElements.map((draw) => draw(message)).find(Boolean);
  if (drawn) return drawn;
  const outgoing = message.direction === "outgoing";
  const meta = [h("time", { datetime: message.created_at ?? "", title: message.created_at ? new Date(message.created_at).toLocaleString() : null, text: formatTime(message.created_at) })];
  if (outgoing) {
    const label = message.status === "failed" ? `failed: ${message.failure_reason || "no reason given"}` : message.status;
    meta.push(h("span", { class: "msg-status", "data-status": message.status, text: label }));
  }
  return h(
    "div",
    { class: `msg ${outgoing ? "outgoing" : "incoming"}`, "data-message-id": message.id },
    h(
      "div",
      { class: "bubble" },
      message.text ? h("div", { class: "msg-text", text: message.text }) : null,
      message.attachments?.length ? h("div", { class: "attachments" }, message.attachments.map(attachmentElement)) : null,
      message.template ? h("div", { class: "msg-text msg-template", text: templateText(message.template) }) : null,
      !message.text && !message.attachments?.length && !message.template ? h("div", { class: "msg-text muted", text: `(${message.type})` }) : null,
    ),
    h("div", { class: "msg-meta" }, meta),
  );
}

function templateText(template) {
  const parameters = (template.parameters ?? []).join(", ");
  return `Template ${template.name}${template.language ? ` (${template.language})` : ""}${parameters ? `: ${parameters}` : ""}`;
}

function attachmentElement(attachment) {
  const name = attachment.file_name || attachment.content_type || "attachment";
  if (attachment.status === "failed") {
    return h("span", { class: "att-failed", text: `Attachment failed: ${attachment.failure_reason || name}` });
  }
  if (attachment.status !== "stored" || !attachment.file_id) {
    return h("span", { class: "att-pending", text: `Attachment pending… (${name})` });
  }
  if (INLINE_TYPES.has(baseType(attachment.content_type))) {
    const image = h("img", { class: "att-image", alt: name });
    const stick = nearEnd();
    fileUrl(attachment.file_id)
      .then((url) => {
        image.src = url;
        image.addEventListener("load", () => stick && scrollToEnd(), { once: true });
      })
      .catch(() => image.replaceWith(h("span", { class: "att-failed", text: `Image unavailable (${name})` })));
    return image;
  }
  const size = formatSize(attachment.size);
  return h("a", {
    href: "#",
    class: "att-file",
    "data-file-id": attachment.file_id,
    text: `Download ${name}${size ? ` (${size})` : ""}`,
    onclick: (event) => {
      event.preventDefault();
      guarded(download)(attachment.file_id, name);
    },
  });
}

async function download(fileId, name) {
  const url = await fileUrl(fileId);
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

// A message changed on the server (an attachment landed): read it again, with `before` its successor.
async function refetchMessage(chatId, messageId) {
  const open = state.open;
  if (!open || open.id !== chatId) return;
  const next = [...open.messages.keys()].sort().find((id) => id > messageId);
  const query = next ? `before=${encodeURIComponent(next)}&limit=1` : `limit=${PAGE_SIZE}`;
  const page = await api(`/api/chats/${encodeURIComponent(chatId)}/messages?${query}`);
  if (state.open?.id !== chatId) return;
  const stick = nearEnd();
  for (const message of page.items) if (!next || message.id === messageId) putMessage(message);
  if (stick) scrollToEnd();
}

async function loadOlder() {
  const open = state.open;
  if (!open || open.loading || !open.cursor) return;
  open.loading = true;
  showHistoryState();
  try {
    const page = await api(
      `/api/chats/${encodeURIComponent(open.id)}/messages?limit=${PAGE_SIZE}&before=${encodeURIComponent(open.cursor)}`,
    );
    if (state.open !== open) return;
    const box = $("messages");
    const fromEnd = box.scrollHeight - box.scrollTop;
    for (const message of page.items) if (!open.messages.has(message.id)) putMessage(message);
    box.scrollTop = box.scrollHeight - fromEnd;
    open.cursor = page.next_cursor;
  } finally {
    open.loading = false;
    if (state.open === open) showHistoryState();
  }
}

// The first page may not fill a tall screen: load older pages until it scrolls or the history ends.
async function fillViewport(id) {
  const box = $("messages");
  while (state.open?.id === id && state.open.cursor && box.scrollHeight <= box.clientHeight + 10) {
    await loadOlder();
  }
}

function showHistoryState() {
  const open = state.open;
  $("history").textContent = !open ? "" : open.loading ? "Loading older messages…" : open.cursor ? "Scroll up for older messages" : "Start of the conversation";
}

function nearEnd() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function scrollToEnd() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

// ----------------------------------------------------------------------------------------------- actions

async function accept() {
  const id = state.open?.id;
  if (!id) return;
  try {
    const chat = await api(`/api/chats/${encodeURIComponent(id)}/accept`, { method: "POST" });
    const known = state.chats.get(id);
    upsertChat({ ...chat, unread_count: known?.unread_count ?? chat.unread_count });
    setFilter("mine");
    await loadActions(id);
    $("reply").focus();
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      const name = contactName(state.chats.get(id) ?? {});
      removeChat(id, error.code === "chat_closed" ? `${name}: the chat was closed meanwhile.` : `${name}: taken by someone else.`);
      return;
    }
    if (error instanceof ApiError && error.status === 404) {
      removeChat(id, "This chat is no longer available to you.");
      return;
    }
    throw error;
  }
}

async function decline() {
  const id = state.open?.id;
  if (!id) return;
  await chatCall(id, () => api(`/api/chats/${encodeURIComponent(id)}/decline`, { method: "POST" }));
  removeChat(id, "Chat declined.");
}

async function closeChat() {
  const id = state.open?.id;
  if (!id) return;
  const chat = await chatCall(id, () => api(`/api/chats/${encodeURIComponent(id)}/close`, { method: "POST" }));
  if (!chat) return;
  upsertChat({ ...chat, unread_count: 0 });
  await loadActions(id);
  toast(`Chat with ${contactName(chat)} closed.`);
}

// Runs a chat action; a 404 removes the chat, a 409 reloads it (the action was no longer allowed).
async function chatCall(id, call) {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      removeChat(id, "This chat is no longer available to you.");
      return null;
    }
    if (error instanceof ApiError && error.status === 409) {
      toast(error.message);
      await reloadChat(id);
      return null;
    }
    throw error;
  }
}

// A reply the messenger's window refuses (422): compose.js takes it from there.
const WINDOW_REFUSALS = new Set(["template_required", "reply_window_closed"]);

// Waits before the console posts a reply again after no answer or a 5xx; the same key makes that safe.
const REPLY_RETRY_MS = [500, 1000, 2000, 4000];

// One Idempotency-Key per reply: a fresh one for new text, the same one for every try of the same text in the
// same chat (the retries below, and Send pressed again after they gave up), so the router stores it once.
function replyKey(chatId, text) {
  const pending = state.pendingReply;
  if (pending?.chatId === chatId && pending.text === text) return pending.key;
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs HTTPS; this works everywhere
  const key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  state.pendingReply = { chatId, text, key };
  return key;
}

async function postReply(id, text, key) {
  for (let attempt = 0; ; attempt++) {
    try {
      const path = `/api/chats/${encodeURIComponent(id)}/messages`;
      return await api(path, { method: "POST", body: { text }, headers: { "Idempotency-Key": key } });
    } catch (error) {
      const unsure = error instanceof ApiError && (error.code === "network" || error.status >= 500);
      if (!unsure || attempt >= REPLY_RETRY_MS.length) throw error;
      await new Promise((resolve) => setTimeout(resolve, REPLY_RETRY_MS[attempt]));
    }
  }
}

async function send() {
  const id = state.open?.id;
  const text = $("reply").value;
  if (!id || !text.trim() || $("reply").disabled) return;
  $("send").disabled = true;
  try {
    const key = replyKey(id, text);
    let answer;
    try {
      answer = await chatCall(id, () => postReply(id, text, key));
    } catch (error) {
      if (error instanceof ApiError && WINDOW_REFUSALS.has(error.code)) {
        state.pendingReply = null;
        // compose.js offers the template form (or says why nothing can be sent now).
        document.dispatchEvent(new CustomEvent("console:reply-refused", { detail: { id, text, error } }));
        return;
      }
      throw error;
    }
    if (state.pendingReply?.key === key) state.pendingReply = null; // taken or refused; kept only when unsure
    if (!answer) return;
    if ($("reply").value === text) $("reply").value = "";
    putMessage({
      id: answer.id,
      chat_id: id,
      direction: "outgoing",
      type: "text",
      text,
      attachments: [],
      status: answer.status,
      failure_reason: null,
      created_at: new Date().toISOString(),
    });
    scrollToEnd();
    const chat = state.chats.get(id);
    if (chat) upsertChat({ ...chat, last_message_at: new Date().toISOString() });
    if (chat?.status === "new") await reloadChat(id); // a reply accepts an offered chat
  } finally {
    if (state.open?.id === id) $("send").disabled = $("reply").disabled;
  }
}

function openTransfer() {
  const id = state.open?.id;
  if (!id) return;
  const chat = state.chats.get(id);
  const operators = [...state.operators.values()].filter((o) => o.id !== state.me?.id && o.id !== chat?.operator_id);
  const target = $("transfer-target");
  target.replaceChildren(
    h(
      "optgroup",
      { label: "Operators" },
      operators.map((o) => h("option", { value: `operator:${o.id}`, disabled: o.status !== "online", text: `${o.name} (${o.status})` })),
    ),
    h("optgroup", { label: "Queues" }, [...state.queues.values()].map((q) => h("option", { value: `queue:${q.id}`, text: q.name }))),
  );
  const firstEnabled = [...target.options].find((o) => !o.disabled);
  if (firstEnabled) target.value = firstEnabled.value;
  $("transfer-dialog").showModal();
  target.focus();
  // Operators come online and go: the names are read again for the next time.
  guarded(loadDirectory)();
}

async function transfer() {
  const id = state.open?.id;
  const [kind, targetId] = $("transfer-target").value.split(/:(.*)/s);
  $("transfer-dialog").close();
  if (!id || !targetId) return;
  const body = kind === "operator" ? { operator_id: targetId } : { queue_id: targetId };
  const chat = await chatCall(id, () => api(`/api/chats/${encodeURIComponent(id)}/transfer`, { method: "POST", body }));
  if (!chat) return;
  const to = kind === "operator" ? operatorName(targetId) : state.queues.get(targetId)?.name ?? "the queue";
  if (state.me?.role === "supervisor") {
    await reloadChat(id);
    toast(`Transferred to ${to}.`);
  } else {
    removeChat(id, `Transferred to ${to}.`);
  }
}

// ------------------------------------------------------------------------------------------- supervisor

function setView(view) {
  state.view = view;
  const supervisor = view === "supervisor";
  $("supervisor").hidden = !supervisor;
  $("desk").hidden = supervisor;
  $("view-toggle").textContent = supervisor ? "Chats" : "Supervisor view";
  clearInterval(state.supervisorTimer);
  if (supervisor) {
    guarded(refreshOverview)();
    state.supervisorTimer = setInterval(guarded(refreshOverview), SUPERVISOR_POLL_MS);
  }
}

async function refreshOverview() {
  // Supervisors hear only about the chats they are part of: the overview and the list are polled.
  const [overview] = await Promise.all([api("/api/supervisor/overview"), refreshChats()]);
  if (state.view !== "supervisor") return;
  $("queue-rows").replaceChildren(
    ...overview.queues.map((q) =>
      h("tr", {}, h("td", { text: q.name }), h("td", { text: q.routing_rule }), h("td", { text: q.waiting }), h("td", { text: q.waiting ? formatDuration(q.longest_wait_seconds) : "–" }), h("td", { text: q.assigned })),
    ),
  );
  $("operator-rows").replaceChildren(
    ...overview.operators.map((o) =>
      h(
        "tr",
        {},
        h("td", { text: o.name }),
        h("td", { text: o.role }),
        h("td", {}, h("span", { class: "dot", "data-status": o.status, "aria-hidden": "true" }), ` ${o.status}`),
        h("td", { text: `${o.active_chats ?? o.assigned_chats} / ${o.max_chats ?? "–"}` }),
        h("td", { text: o.offered_chats }),
      ),
    ),
  );
  for (const o of overview.operators) state.operators.set(o.id, { ...state.operators.get(o.id), ...o });
  $("overview-time").textContent = `Updated ${new Date(overview.generated_at).toLocaleTimeString()}`;
  renderAllChats();
}

function renderAllChats() {
  const open = [...state.chats.values()].filter((c) => c.status !== "closed").sort(byRecent);
  $("all-chat-rows").replaceChildren(
    ...open.map((chat) =>
      h(
        "tr",
        {},
        h("td", {}, h("button", { type: "button", class: "ghost", onclick: () => { setView("desk"); guarded(openChat)(chat.id); }, text: contactName(chat) })),
        h("td", { text: state.channels.get(chat.channel_id)?.name ?? "" }),
        h("td", { text: state.queues.get(chat.queue_id)?.name ?? "" }),
        h("td", { text: chat.status }),
        h("td", { text: operatorName(chat.operator_id) || "–" }),
        h("td", { text: formatTime(chat.last_message_at ?? chat.created_at) }),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------- wiring

function onListKeys(event) {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const items = [...$("chat-list").querySelectorAll(".chat-item")];
  const at = items.indexOf(document.activeElement);
  if (at < 0) return;
  event.preventDefault();
  items[Math.max(0, Math.min(items.length - 1, at + (event.key === "ArrowDown" ? 1 : -1)))].focus();
}

function onReplyKeys(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    guarded(send)();
  }
}

function start() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (token) guarded(signIn)(token);
  });
  $("signout").addEventListener("click", () => signOut());
  $("status").addEventListener("change", guarded(changeStatus));
  for (const tab of document.querySelectorAll(".filter")) tab.addEventListener("click", () => setFilter(tab.dataset.filter));
  $("chat-list").addEventListener("keydown", onListKeys);
  $("more-closed").addEventListener("click", guarded(moreClosed));
  $("back").addEventListener("click", backToList);
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop < 60) guarded(loadOlder)();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(send)();
  });
  $("reply").addEventListener("keydown", onReplyKeys);
  $("chat-view").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("desk").classList.contains("show-conversation")) backToList();
  });
  $("view-toggle").addEventListener("click", () => setView(state.view === "desk" ? "supervisor" : "desk"));
  $("transfer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(transfer)();
  });
  $("transfer-cancel").addEventListener("click", () => $("transfer-dialog").close());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.open) scheduleRead(state.open.id);
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) guarded(signIn)(saved);
  else $("token").focus();
}

start();

// For the console's other modules (workplace.js, compose.js, contacts.js): the same state and helpers, one instance.
export {
  $,
  state,
  api,
  ApiError,
  h,
  toast,
  guarded,
  chatCall,
  putMessage,
  messageArrived,
  scrollToEnd,
  reloadChat,
  renderList,
  upsertChat,
  openChat,
  contactName,
  operatorName,
  formatTime,
  formatSize,
  replyKey,
  plugins,
  PROVIDERS,
};
