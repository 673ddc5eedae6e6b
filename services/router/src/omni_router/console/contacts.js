// The contact card (issue 13 item 4): from the open chat's header, the contact's name and attributes (editable),
// its identities on each channel, and its chats across channels, earlier conversations readable in the card.
// Names, attributes and messages are customer content: shown as text only, never as markup.

import { $, state, api, ApiError, h, toast, guarded, formatTime, upsertChat, PROVIDERS } from "./console.js";

const card = { contactId: null, chatId: null };

function providerLabel(provider) {
  return PROVIDERS[provider]?.[1] ?? provider ?? "deleted channel";
}

function attributeRow(name = "", value = "") {
  const row = h(
    "div",
    { class: "attr-row" },
    h("input", { class: "attr-name", "aria-label": "Attribute name", placeholder: "name, e.g. email", value: name, maxlength: "64" }),
    h("input", { class: "attr-value", "aria-label": "Attribute value", placeholder: "value", value, maxlength: "1000" }),
  );
  row.append(h("button", { type: "button", class: "ghost attr-remove", "aria-label": "Remove attribute", text: "×", onclick: () => row.remove() }));
  return row;
}

function renderCard(contact) {
  $("contact-name-input").value = contact.name ?? "";
  $("contact-attributes").replaceChildren(...Object.entries(contact.attributes ?? {}).map(([k, v]) => attributeRow(k, v)));
  $("contact-identities").replaceChildren(
    ...contact.identities.map((identity) =>
      h(
        "li",
        {},
        h("span", { class: "identity-provider", text: providerLabel(identity.provider) }),
        " ",
        h("span", { class: "identity-id", text: identity.external_id }),
        h("span", { class: "muted", text: ` · ${state.channels.get(identity.channel_id)?.name ?? ""}` }),
      ),
    ),
  );
}

function renderChats(chats) {
  $("contact-chats").replaceChildren(
    ...chats.map((chat) => {
      const channel = state.channels.get(chat.channel_id);
      const label = `${formatTime(chat.created_at) || "–"} · ${channel?.name ?? providerLabel(channel?.provider)} · ${chat.status}${chat.id === card.chatId ? " (this chat)" : ""}`;
      return h(
        "li",
        {},
        h("button", { type: "button", class: "ghost contact-chat", "data-chat-id": chat.id, text: label, onclick: () => guarded(showTranscript)(chat, label) }),
      );
    }),
  );
  $("contact-chats-empty").hidden = chats.length > 0;
}

async function showTranscript(chat, label) {
  const page = await api(`/api/chats/${encodeURIComponent(chat.id)}/messages?limit=50`);
  $("transcript-title").textContent = label;
  $("transcript").replaceChildren(
    ...page.items.map((message) =>
      h(
        "li",
        { class: `transcript-msg ${message.direction}` },
        h("time", { text: formatTime(message.created_at) }),
        " ",
        h("span", { class: "transcript-text", text: message.text ?? (message.attachments?.length ? `(${message.attachments.map((a) => a.file_name || "file").join(", ")})` : `(${message.type})`) }),
      ),
    ),
  );
  $("transcript-box").hidden = false;
}

async function openCard() {
  const chat = state.chats.get(state.open?.id);
  const contactId = chat?.contact_id ?? chat?.contact?.id;
  if (!contactId) return;
  card.contactId = contactId;
  card.chatId = chat.id;
  $("contact-error").textContent = "";
  $("transcript-box").hidden = true;
  const [contact, chats] = await Promise.all([
    api(`/api/contacts/${encodeURIComponent(contactId)}`),
    api(`/api/contacts/${encodeURIComponent(contactId)}/chats`),
  ]);
  if (card.contactId !== contactId) return;
  renderCard(contact);
  renderChats(chats.items);
  $("contact-dialog").showModal();
}

async function saveCard() {
  const contactId = card.contactId;
  if (!contactId) return;
  const attributes = {};
  for (const row of $("contact-attributes").querySelectorAll(".attr-row")) {
    const name = row.querySelector(".attr-name").value.trim();
    if (name) attributes[name] = row.querySelector(".attr-value").value;
  }
  const body = { name: $("contact-name-input").value.trim(), attributes };
  let contact;
  try {
    contact = await api(`/api/contacts/${encodeURIComponent(contactId)}`, { method: "PATCH", body });
  } catch (error) {
    if (error instanceof ApiError && (error.status === 400 || error.status === 404)) {
      $("contact-error").textContent = error.message;
      return;
    }
    throw error;
  }
  renderCard(contact);
  for (const chat of state.chats.values()) {
    if ((chat.contact_id ?? chat.contact?.id) === contactId) upsertChat({ ...chat, contact: { ...chat.contact, name: contact.name } });
  }
  if (state.open && state.chats.get(state.open.id)) $("chat-name").textContent = contact.name;
  toast("Contact saved.");
}

function setUp() {
  const button = h("button", { type: "button", id: "contact-open", class: "ghost contact-open", text: "Contact", title: "The contact's card and earlier chats" });
  $("chat-actions").before(button);
  button.addEventListener("click", guarded(openCard));

  const dialog = h(
    "dialog",
    { id: "contact-dialog", class: "contact-dialog", "aria-labelledby": "contact-title" },
    h(
      "form",
      { id: "contact-form", method: "dialog" },
      h("h2", { id: "contact-title", text: "Contact" }),
      h("label", { for: "contact-name-input", text: "Name" }),
      h("input", { id: "contact-name-input", autocomplete: "off", maxlength: "200" }),
      h("div", { class: "attr-head" }, h("span", { text: "Attributes" }), h("button", { type: "button", id: "contact-add-attribute", class: "ghost", text: "Add" })),
      h("div", { id: "contact-attributes", class: "attributes" }),
      h("p", { id: "contact-error", class: "error", role: "alert" }),
      h("div", { class: "dialog-buttons" }, h("button", { type: "button", id: "contact-close", class: "ghost", text: "Close" }), h("button", { type: "submit", id: "contact-save", class: "primary", text: "Save" })),
      h("h3", { text: "On channels" }),
      h("ul", { id: "contact-identities", class: "identities" }),
      h("h3", { text: "Chats" }),
      h("ul", { id: "contact-chats", class: "contact-chats" }),
      h("p", { id: "contact-chats-empty", class: "muted", text: "No chats.", hidden: true }),
      h("div", { id: "transcript-box", class: "transcript-box", hidden: true }, h("h3", { id: "transcript-title" }), h("ol", { id: "transcript", class: "transcript" })),
    ),
  );
  $("app").append(dialog);
  $("contact-add-attribute").addEventListener("click", () => $("contact-attributes").append(attributeRow()));
  $("contact-close").addEventListener("click", () => dialog.close());
  $("contact-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(saveCard)();
  });
  document.addEventListener("console:chat-closed", () => {
    card.contactId = null;
    if (dialog.open) dialog.close();
  });
}

setUp();
