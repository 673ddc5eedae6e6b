// Files and templates in the reply box (issue 13 items 6 and 7): an attach button and drag-and-drop upload a file
// (POST /api/files) and send it as a reply (`attachments: [{file_id}]`, the reply box's text as its caption); when
// the messenger's 24-hour window refuses free text (422 template_required), a form sends a template instead.
// File names and everything else customers or the server send are shown as text only.

import { $, state, api, ApiError, h, toast, guarded, chatCall, putMessage, scrollToEnd, reloadChat, upsertChat, replyKey } from "./console.js";

const TEMPLATE_PROVIDERS = new Set(["whatsapp", "twilio"]);

// ------------------------------------------------------------------------------------------------ files

async function upload(file) {
  const generation = state.generation;
  const form = new FormData();
  form.append("file", file, file.name);
  let response;
  try {
    response = await fetch("/api/files", { method: "POST", headers: { Authorization: `Bearer ${state.token}` }, body: form });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached right now.");
  }
  const data = await response.json().catch(() => null);
  if (generation !== state.generation) throw new ApiError(0, "stale", "signed out meanwhile");
  if (response.status === 413) throw new ApiError(413, "file_too_large", `${file.name} is too large to send.`);
  if (!response.ok) throw new ApiError(response.status, data?.error ?? "http_error", data?.detail ?? `HTTP ${response.status}`);
  return data;
}

async function sendFile(file) {
  const id = state.open?.id;
  if (!id || !file || $("reply").disabled) return;
  const status = $("attach-status");
  status.textContent = `Uploading ${file.name}…`;
  $("attach").disabled = true;
  try {
    const stored = await upload(file);
    const text = $("reply").value.trim() ? $("reply").value : null;
    const body = { text, attachments: [{ file_id: stored.file_id }] };
    const key = replyKey(id, `file:${stored.file_id}`);
    const path = `/api/chats/${encodeURIComponent(id)}/messages`;
    let answer;
    try {
      answer = await chatCall(id, () => api(path, { method: "POST", body, headers: { "Idempotency-Key": key } }));
    } catch (error) {
      if (error instanceof ApiError && error.code === "template_required") {
        offerTemplate(id, error);
        return;
      }
      throw error;
    }
    state.pendingReply = null;
    if (!answer) return;
    if (text !== null && $("reply").value === text) $("reply").value = "";
    const attachment = { ...stored, status: "stored", failure_reason: null };
    putMessage({ id: answer.id, chat_id: id, direction: "outgoing", type: text ? "text" : "file", text, attachments: [attachment], status: answer.status, failure_reason: null, created_at: new Date().toISOString() });
    scrollToEnd();
    const chat = state.chats.get(id);
    if (chat) upsertChat({ ...chat, last_message_at: new Date().toISOString() });
    if (chat?.status === "new") await reloadChat(id);
  } finally {
    status.textContent = "";
    $("attach").disabled = $("reply").disabled;
  }
}

function setUpFiles() {
  const input = h("input", { type: "file", id: "attach-input", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true" });
  const button = h("button", { type: "button", id: "attach", class: "ghost attach", title: "Attach a file (or drop one on the conversation)", text: "Attach" });
  const status = h("span", { id: "attach-status", class: "attach-status muted", role: "status", "aria-live": "polite" });
  $("composer").insertBefore(button, $("send"));
  $("composer").append(input, status);
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    const [file] = input.files ?? [];
    input.value = "";
    if (file) guarded(sendFile)(file);
  });
  // Drag and drop anywhere on the conversation.
  const pane = $("chat-view");
  const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
  pane.addEventListener("dragover", (event) => {
    if (!hasFiles(event) || !state.open) return;
    event.preventDefault();
    pane.classList.add("dropping");
  });
  pane.addEventListener("dragleave", (event) => {
    if (event.target === pane || !pane.contains(event.relatedTarget)) pane.classList.remove("dropping");
  });
  pane.addEventListener("drop", (event) => {
    pane.classList.remove("dropping");
    if (!hasFiles(event)) return;
    event.preventDefault();
    const [file] = event.dataTransfer.files;
    if (file) guarded(sendFile)(file);
  });
}

// -------------------------------------------------------------------------------------------- templates

function windowEnd(error) {
  const ends = error.data?.window_ends_at;
  if (!ends) return "The customer has not written in this chat yet.";
  const at = new Date(ends);
  return Number.isNaN(at.getTime()) ? "" : `The 24-hour window closed ${at.toLocaleString()}.`;
}

function offerTemplate(id, error) {
  const chat = state.chats.get(id);
  const provider = state.channels.get(chat?.channel_id)?.provider;
  if (!TEMPLATE_PROVIDERS.has(provider)) {
    toast(error.message);
    return;
  }
  const dialog = $("template-dialog");
  dialog.dataset.chatId = id;
  $("template-why").textContent = `Free text cannot be sent now. ${windowEnd(error)} Send an approved template instead.`;
  $("template-error").textContent = "";
  $("template-language").closest(".field").hidden = provider === "twilio"; // Twilio: the Content SID is all
  $("template-name").placeholder = provider === "twilio" ? "Content SID (HX…)" : "template name, e.g. order_update";
  dialog.showModal();
  $("template-name").focus();
}

async function sendTemplate() {
  const dialog = $("template-dialog");
  const id = dialog.dataset.chatId;
  if (!id) return;
  const name = $("template-name").value.trim();
  const language = $("template-language").closest(".field").hidden ? null : $("template-language").value.trim() || null;
  const parameters = $("template-parameters").value.split("\n").map((p) => p.trim()).filter(Boolean);
  if (!name) {
    $("template-error").textContent = "Name the template.";
    return;
  }
  const template = { name, language, parameters };
  const path = `/api/chats/${encodeURIComponent(id)}/messages`;
  const key = replyKey(id, `template:${JSON.stringify(template)}`);
  let answer;
  try {
    answer = await chatCall(id, () => api(path, { method: "POST", body: { template }, headers: { "Idempotency-Key": key } }));
  } catch (error) {
    if (error instanceof ApiError && error.status === 422) {
      $("template-error").textContent = error.message;
      return;
    }
    throw error;
  }
  state.pendingReply = null;
  dialog.close();
  if (!answer) return;
  putMessage({ id: answer.id, chat_id: id, direction: "outgoing", type: "template", text: null, attachments: [], template, status: answer.status, failure_reason: null, created_at: new Date().toISOString() });
  scrollToEnd();
  const chat = state.chats.get(id);
  if (chat?.status === "new") await reloadChat(id);
}

function setUpTemplates() {
  const field = (label, control) => h("div", { class: "field" }, h("label", { for: control.id, text: label }), control);
  const dialog = h(
    "dialog",
    { id: "template-dialog", "aria-labelledby": "template-title" },
    h(
      "form",
      { id: "template-form", method: "dialog" },
      h("h2", { id: "template-title", text: "Send a template" }),
      h("p", { id: "template-why", class: "muted" }),
      field("Template", h("input", { id: "template-name", autocomplete: "off", spellcheck: "false", required: true })),
      field("Language", h("input", { id: "template-language", value: "en_US", autocomplete: "off", spellcheck: "false" })),
      field("Parameters, one per line", h("textarea", { id: "template-parameters", rows: "3" })),
      h("p", { id: "template-error", class: "error", role: "alert" }),
      h(
        "div",
        { class: "dialog-buttons" },
        h("button", { type: "button", id: "template-cancel", class: "ghost", text: "Cancel" }),
        h("button", { type: "submit", id: "template-send", class: "primary", text: "Send template" }),
      ),
    ),
  );
  $("app").append(dialog);
  $("template-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(sendTemplate)();
  });
  $("template-cancel").addEventListener("click", () => dialog.close());
  document.addEventListener("console:reply-refused", (event) => {
    const { id, error } = event.detail;
    if (error.code === "template_required") offerTemplate(id, error);
    else toast(error.message);
  });
  document.addEventListener("console:chat-closed", () => dialog.open && dialog.close());
}

setUpFiles();
setUpTemplates();
