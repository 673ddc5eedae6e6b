// The operator's workplace in the console: internal notes (shown apart, written with the Note switch), labels on
// chats (shown in the list and the header, edited there, and a filter of the list), canned responses picked by
// typing `/` in the reply box (the server fills them for the chat), and search over messages and contacts.
// It plugs into console.js through `plugins`; everything it shows comes from the operator API, as text only.

import {
  ApiError,
  api,
  contactName,
  formatTime,
  guarded,
  h,
  openChat,
  operatorName,
  plugins,
  putMessage,
  renderList,
  scrollToEnd,
  state,
  toast,
  upsertChat,
} from "./console.js";

const $ = (id) => document.getElementById(id);
const PICKER_DELAY_MS = 120;
const SEARCH_LIMIT = 20;

const workplace = {
  labels: null, // Map name -> {id, name, color}, read once per sign-in
  labelsFor: null, // the token they were read with
  labelFilter: "",
  loading: null, // the labels' request under way
  shownId: null, // the chat whose header was drawn last
  noteMode: false,
  picker: { open: false, items: [], index: 0, start: 0, timer: null, asked: "" },
};

// ------------------------------------------------------------------------------------------------- notes

function noteElement(message) {
  if (message.direction !== "internal") return null;
  const author = message.author_id ? operatorName(message.author_id) : "";
  return h(
    "div",
    { class: "msg note", "data-message-id": message.id },
    h(
      "div",
      { class: "bubble" },
      h("div", { class: "note-head", text: author ? `Internal note · ${author}` : "Internal note" }),
      h("div", { class: "msg-text", text: message.text ?? "" }),
    ),
    h(
      "div",
      { class: "msg-meta" },
      h("time", { datetime: message.created_at ?? "", text: formatTime(message.created_at) }),
      h("span", { text: "not sent to the customer" }),
    ),
  );
}

function asMessage(note) {
  return { ...note, direction: "internal", type: "note", attachments: [], status: "stored", failure_reason: null };
}

function noteHeard(note, data) {
  if (!data.note) return;
  if (state.open?.id === note.chat_id) {
    putMessage(asMessage(data.note));
    scrollToEnd();
    return;
  }
  const chat = state.chats.get(note.chat_id);
  toast(`New note from ${operatorName(data.note.author_id)}${chat ? ` on ${contactName(chat)}` : ""}.`);
}

function setNoteMode(on) {
  workplace.noteMode = on;
  $("note-mode").setAttribute("aria-pressed", String(on));
  $("composer").classList.toggle("note-mode", on);
  const reply = $("reply");
  if (on) {
    reply.disabled = false;
    $("send").disabled = false;
    reply.placeholder = "Write an internal note for the other operators. Enter saves it.";
    $("send").textContent = "Save note";
  } else {
    const canSend = state.open?.actions?.includes("send") ?? false;
    reply.disabled = !canSend;
    $("send").disabled = !canSend;
    reply.placeholder = canSend ? "Write a reply. Enter sends, Shift+Enter adds a line." : "You cannot reply in this chat.";
    $("send").textContent = "Send";
  }
}

async function saveNote() {
  const id = state.open?.id;
  const text = $("reply").value;
  if (!id || !text.trim()) return;
  const note = await api(`/api/chats/${encodeURIComponent(id)}/notes`, { method: "POST", body: { text } });
  if ($("reply").value === text) $("reply").value = "";
  putMessage(asMessage(note));
  scrollToEnd();
  setNoteMode(false);
}

// ------------------------------------------------------------------------------------------------ labels

async function ensureLabels() {
  if (workplace.labels && workplace.labelsFor === state.token) return workplace.labels;
  if (!workplace.loading) {
    const token = state.token;
    workplace.loading = api("/api/labels")
      .then((answer) => {
        workplace.labels = new Map(answer.items.map((label) => [label.name, label]));
        workplace.labelsFor = token;
        renderLabelFilter();
        renderList();
        return workplace.labels;
      })
      .finally(() => {
        workplace.loading = null;
      });
  }
  return workplace.loading;
}

function chip(name) {
  const label = workplace.labels?.get(name);
  const el = h("span", { class: "label-chip", text: name });
  // A colour the admin API checked (#rgb or #rrggbb), set through the CSSOM: the page allows no inline styles.
  if (label?.color) el.style.setProperty("--label-color", label.color);
  return el;
}

function labelChips(chat) {
  if (state.token && workplace.labelsFor !== state.token && !workplace.loading) guarded(ensureLabels)();
  if (!chat.labels?.length) return null;
  return h("span", { class: "label-chips", "aria-label": `Labels: ${chat.labels.join(", ")}` }, chat.labels.map(chip));
}

function renderLabelFilter() {
  const select = $("label-filter");
  const names = [...(workplace.labels?.keys() ?? [])];
  select.replaceChildren(
    h("option", { value: "", text: "All labels" }),
    ...names.map((name) => h("option", { value: name, text: name, selected: name === workplace.labelFilter })),
  );
  $("label-filter-wrap").hidden = names.length === 0;
}

function showChatLabels(chat) {
  let row = $("chat-labels");
  if (!row) {
    row = h("div", { id: "chat-labels", class: "chat-labels" });
    $("chat-view").querySelector(".chat-header").after(row);
  }
  const edit = h("button", {
    type: "button",
    class: "ghost small",
    id: "edit-labels",
    "aria-expanded": "false",
    onclick: () => guarded(toggleLabelEditor)(chat.id),
    text: chat.labels?.length ? "Edit labels" : "Add label",
  });
  row.replaceChildren(labelChips(chat) ?? h("span", { class: "muted", text: "No labels" }), edit);
  guarded(ensureLabels)();
}

async function toggleLabelEditor(chatId) {
  const existing = $("label-editor");
  if (existing) {
    existing.remove();
    $("edit-labels")?.setAttribute("aria-expanded", "false");
    return;
  }
  const labels = await ensureLabels();
  const chat = state.chats.get(chatId);
  if (!chat || state.open?.id !== chatId) return;
  const chosen = new Set(chat.labels ?? []);
  const boxes = [...labels.values()].map((label) =>
    h(
      "label",
      { class: "label-option" },
      h("input", { type: "checkbox", value: label.name, checked: chosen.has(label.name) }),
      chip(label.name),
    ),
  );
  const editor = h(
    "form",
    { id: "label-editor", class: "label-editor", "aria-label": "Labels of this chat" },
    boxes.length ? boxes : h("span", { class: "muted", text: "No labels are defined yet." }),
    h("button", { type: "submit", class: "primary small", text: "Save labels" }),
  );
  editor.addEventListener("submit", (event) => {
    event.preventDefault();
    const names = [...editor.querySelectorAll("input:checked")].map((box) => box.value);
    guarded(saveLabels)(chatId, names);
  });
  $("chat-labels").after(editor);
  $("edit-labels")?.setAttribute("aria-expanded", "true");
}

async function saveLabels(chatId, names) {
  const chat = await api(`/api/chats/${encodeURIComponent(chatId)}/labels`, { method: "PUT", body: { labels: names } });
  $("label-editor")?.remove();
  const known = state.chats.get(chatId);
  upsertChat({ ...(known ?? chat), labels: chat.labels });
}

// -------------------------------------------------------------------------------------- canned responses

// The `/word` being typed: from a `/` at the start of the text or of a line, up to the caret (a path typed in the
// middle of a sentence, "see /help", opens nothing).
function slashWord() {
  const reply = $("reply");
  const before = reply.value.slice(0, reply.selectionStart);
  const found = /(^|\n)\/([^\s/]*)$/.exec(before);
  if (!found) return null;
  return { start: before.length - found[2].length - 1, query: found[2] };
}

function onReplyInput() {
  if (workplace.noteMode) return closePicker();
  const word = slashWord();
  if (!word) return closePicker();
  workplace.picker.start = word.start;
  clearTimeout(workplace.picker.timer);
  workplace.picker.timer = setTimeout(() => guarded(askPicker)(word.query), PICKER_DELAY_MS);
}

async function askPicker(query) {
  workplace.picker.asked = query;
  const answer = await api(`/api/canned-responses?q=${encodeURIComponent(query)}`);
  if (workplace.picker.asked !== query || !slashWord()) return;
  workplace.picker.items = answer.items;
  workplace.picker.index = 0;
  workplace.picker.open = true;
  renderPicker();
}

function renderPicker() {
  const list = $("canned-picker");
  const { items, index } = workplace.picker;
  list.replaceChildren(
    ...(items.length
      ? items.map((item, at) =>
          h(
            "li",
            {
              role: "option",
              id: `canned-${item.id}`,
              class: "canned-item",
              "data-response-id": item.id,
              "aria-selected": String(at === index),
              onmousedown: (event) => {
                event.preventDefault(); // keeps the focus (and the caret) in the reply box
                guarded(pick)(item);
              },
            },
            h("span", { class: "canned-shortcut", text: `/${item.shortcut}` }),
            h("span", { class: "canned-scope", text: item.scope }),
            h("span", { class: "canned-text", text: item.text }),
          ),
        )
      : [h("li", { class: "canned-none muted", text: "No canned response matches." })]),
  );
  list.hidden = false;
  $("reply").setAttribute("aria-expanded", "true");
  const selected = items[index];
  if (selected) $("reply").setAttribute("aria-activedescendant", `canned-${selected.id}`);
  list.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: "nearest" });
}

function closePicker() {
  clearTimeout(workplace.picker.timer);
  workplace.picker.open = false;
  workplace.picker.asked = "";
  $("canned-picker").hidden = true;
  $("reply").setAttribute("aria-expanded", "false");
  $("reply").removeAttribute("aria-activedescendant");
}

async function pick(item) {
  const id = state.open?.id;
  if (!id) return;
  const word = slashWord();
  const { text } = await api(`/api/chats/${encodeURIComponent(id)}/canned-responses/${encodeURIComponent(item.id)}`);
  const reply = $("reply");
  const start = word ? word.start : workplace.picker.start;
  const end = reply.selectionStart;
  // Inserted as plain text into the box: nothing of it is ever read as HTML.
  reply.value = reply.value.slice(0, start) + text + reply.value.slice(end);
  reply.selectionStart = reply.selectionEnd = start + text.length;
  closePicker();
  reply.focus();
}

// Runs before console.js's own handler of the reply box (capture on its form): while the picker is open, the
// arrows, Enter, Tab and Escape are the picker's; in note mode, Enter saves the note.
function onComposerKeys(event) {
  if (event.target !== $("reply") || event.isComposing) return;
  const picker = workplace.picker;
  if (picker.open) {
    const moves = { ArrowDown: 1, ArrowUp: -1 };
    if (event.key in moves && picker.items.length) {
      picker.index = (picker.index + moves[event.key] + picker.items.length) % picker.items.length;
      renderPicker();
    } else if ((event.key === "Enter" || event.key === "Tab") && picker.items.length) {
      guarded(pick)(picker.items[picker.index]);
    } else if (event.key === "Escape") {
      closePicker();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    return;
  }
  if (workplace.noteMode && event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    event.stopPropagation();
    guarded(saveNote)();
  }
}

function onComposerSubmit(event) {
  if (!workplace.noteMode) return;
  event.preventDefault();
  event.stopPropagation();
  guarded(saveNote)();
}

// ------------------------------------------------------------------------------------------------ search

async function search(query) {
  const results = $("search-results");
  if (!query.trim()) {
    results.hidden = true;
    return;
  }
  const answer = await api(`/api/search?q=${encodeURIComponent(query)}&limit=${SEARCH_LIMIT}`);
  results.replaceChildren(
    ...(answer.items.length
      ? answer.items.map((hit) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                class: "search-hit",
                "data-chat-id": hit.chat_id ?? "",
                "data-kind": hit.kind,
                disabled: !hit.chat_id,
                onclick: () => guarded(openHit)(hit),
              },
              h("span", { class: "hit-kind", text: hit.kind === "contact" ? "Contact" : "Message" }),
              h("span", { class: "hit-text", text: hit.text }),
              h("time", { datetime: hit.created_at ?? "", text: formatTime(hit.created_at) }),
            ),
          ),
        )
      : [h("li", { class: "muted search-none", text: "Nothing found." })]),
  );
  results.hidden = false;
}

async function openHit(hit) {
  if (!state.chats.has(hit.chat_id)) {
    try {
      upsertChat(await api(`/api/chats/${encodeURIComponent(hit.chat_id)}`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return toast("This chat is no longer available to you.");
      throw error;
    }
  }
  const chat = state.chats.get(hit.chat_id);
  const tab = chat.status === "closed" ? "closed" : chat.status === "new" ? "new" : chat.operator_id === state.me?.id ? "mine" : null;
  if (tab) document.querySelector(`.filter[data-filter="${tab}"]`)?.click();
  $("search-results").hidden = true;
  await openChat(hit.chat_id);
}

// ------------------------------------------------------------------------------------------------ wiring

function build() {
  const searchForm = h(
    "form",
    { id: "search-form", class: "search-form", role: "search" },
    h("label", { for: "search", class: "visually-hidden", text: "Search messages and contacts" }),
    h("input", { id: "search", type: "search", placeholder: "Search…", autocomplete: "off", spellcheck: "false" }),
    h("ul", { id: "search-results", class: "search-results", "aria-label": "Search results", hidden: true }),
  );
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(search)($("search").value);
  });
  $("live").after(searchForm);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") $("search-results").hidden = true;
  });

  const filterWrap = h(
    "div",
    { id: "label-filter-wrap", class: "label-filter", hidden: true },
    h("label", { for: "label-filter", text: "Label" }),
    h("select", { id: "label-filter" }),
  );
  document.querySelector(".list-pane .filters").after(filterWrap);
  $("label-filter").addEventListener("change", () => {
    workplace.labelFilter = $("label-filter").value;
    renderList();
  });

  const composer = $("composer");
  composer.prepend(
    h("ul", { id: "canned-picker", class: "canned-picker", role: "listbox", "aria-label": "Canned responses", hidden: true }),
  );
  $("send").before(
    h("button", {
      id: "note-mode",
      type: "button",
      class: "ghost",
      "aria-pressed": "false",
      title: "Write an internal note instead of a reply",
      onclick: () => {
        setNoteMode(!workplace.noteMode);
        $("reply").focus();
      },
      text: "Note",
    }),
  );
  const reply = $("reply");
  reply.setAttribute("role", "combobox");
  reply.setAttribute("aria-autocomplete", "list");
  reply.setAttribute("aria-controls", "canned-picker");
  reply.setAttribute("aria-expanded", "false");
  reply.addEventListener("input", onReplyInput);
  reply.addEventListener("blur", () => setTimeout(closePicker, 150));
  composer.addEventListener("keydown", onComposerKeys, { capture: true });
  composer.addEventListener("submit", onComposerSubmit, { capture: true });

  plugins.handlers["note.new"] = noteHeard;
  plugins.messageElements.push(noteElement);
  plugins.chatBadges.push(labelChips);
  plugins.listFilters.push((chat) => !workplace.labelFilter || (chat.labels ?? []).includes(workplace.labelFilter));
  plugins.chatShown.push((chat) => {
    if (workplace.shownId !== chat.id) {
      workplace.shownId = chat.id;
      $("label-editor")?.remove();
      closePicker();
      if (workplace.noteMode) setNoteMode(false);
    }
    showChatLabels(chat);
  });
}

build();
