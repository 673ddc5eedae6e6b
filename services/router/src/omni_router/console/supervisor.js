// The supervisor view's reports, business hours and ratings: charts of GET /api/supervisor/reports/summary drawn
// here as SVG (nothing is loaded from elsewhere), a period picker, an editor of a queue's business hours, greeting,
// out-of-hours answer and CSAT question (PATCH /api/supervisor/queues/{id}), and the ratings of closed chats.
// It adds its panels to console.js's #supervisor section and loads them each time that section is shown.

const TOKEN_KEY = "omni.console.token";
const SVG = "http://www.w3.org/2000/svg";
const DAYS = [
  ["mon", "Monday"],
  ["tue", "Tuesday"],
  ["wed", "Wednesday"],
  ["thu", "Thursday"],
  ["fri", "Friday"],
  ["sat", "Saturday"],
  ["sun", "Sunday"],
];
const PERIODS = [
  ["7", "Last 7 days"],
  ["30", "Last 30 days"],
  ["90", "Last 90 days"],
  ["custom", "Custom…"],
];

const $ = (id) => document.getElementById(id);
const view = { queues: [], loaded: false };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

async function call(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.detail ?? `HTTP ${response.status}`);
  return data;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

// ------------------------------------------------------------------------------------------------ panels

function reportsPanel() {
  const queues = el("select", { id: "report-queue", "aria-label": "Queue" }, el("option", { value: "", text: "All queues" }));
  return el(
    "div",
    { class: "panel wide", id: "reports-panel" },
    el("h2", { text: "Reports" }),
    el(
      "form",
      { id: "report-form", class: "report-form" },
      el("label", { for: "report-period", text: "Period" }),
      el("select", { id: "report-period" }, ...PERIODS.map(([value, text]) => el("option", { value, text, selected: value === "30" }))),
      el("span", { id: "report-custom", class: "report-custom", hidden: true },
        el("label", { for: "report-from", text: "From" }),
        el("input", { id: "report-from", type: "date" }),
        el("label", { for: "report-to", text: "to" }),
        el("input", { id: "report-to", type: "date" }),
      ),
      queues,
      el("button", { type: "submit", class: "primary", text: "Show" }),
    ),
    el("p", { id: "report-error", class: "error", role: "alert" }),
    el("div", { id: "report-tiles", class: "tiles" }),
    el("div", { class: "charts" },
      el("figure", { class: "chart" }, el("figcaption", { text: "Chats opened and closed per day (UTC)" }), el("div", { id: "chart-days" })),
      el("figure", { class: "chart" }, el("figcaption", { text: "First response and resolution" }), el("div", { id: "chart-times" })),
    ),
  );
}

function hoursPanel() {
  const days = DAYS.map(([key, name]) =>
    el("div", { class: "hours-day" },
      el("label", { for: `hours-${key}`, text: name }),
      el("input", { id: `hours-${key}`, "data-day": key, placeholder: "closed (e.g. 09:00-12:30, 13:30-18:00)", spellcheck: "false" }),
    ),
  );
  return el(
    "div",
    { class: "panel wide", id: "hours-panel" },
    el("h2", { text: "Business hours" }),
    el(
      "form",
      { id: "hours-form", class: "hours-form" },
      el("div", { class: "hours-row" },
        el("label", { for: "hours-queue", text: "Queue" }),
        el("select", { id: "hours-queue" }),
        el("label", { class: "check" }, el("input", { id: "hours-always", type: "checkbox" }), " Always open (no business hours)"),
      ),
      el("div", { id: "hours-fields", class: "hours-fields" },
        el("div", { class: "hours-row" },
          el("label", { for: "hours-zone", text: "Time zone" }),
          el("input", { id: "hours-zone", list: "hours-zones", placeholder: "Europe/Berlin", spellcheck: "false" }),
          el("datalist", { id: "hours-zones" }),
        ),
        ...days,
        el("label", { for: "hours-holidays", text: "Holidays (one date a line, YYYY-MM-DD)" }),
        el("textarea", { id: "hours-holidays", rows: "2", spellcheck: "false" }),
      ),
      el("label", { for: "hours-greeting", text: "Greeting (a new chat, inside hours)" }),
      el("textarea", { id: "hours-greeting", rows: "2" }),
      el("label", { for: "hours-away", text: "Out-of-hours answer (the chat waits for the opening)" }),
      el("textarea", { id: "hours-away", rows: "2" }),
      el("label", { class: "check" }, el("input", { id: "csat-enabled", type: "checkbox" }), " Ask for a rating when a chat closes"),
      el("label", { for: "csat-question", text: "Rating question" }),
      el("input", { id: "csat-question" }),
      el("div", { class: "hours-row" }, el("button", { type: "submit", class: "primary", text: "Save" }), el("span", { id: "hours-result", role: "status" })),
      el("p", { id: "hours-error", class: "error", role: "alert" }),
    ),
  );
}

function ratingsPanel() {
  return el(
    "div",
    { class: "panel wide", id: "ratings-panel" },
    el("h2", { text: "Ratings of closed chats" }),
    el("div", { class: "table-wrap" },
      el("table", {},
        el("thead", {}, el("tr", {}, ...["Contact", "Rating", "Comment", "Closed"].map((t) => el("th", { scope: "col", text: t })))),
        el("tbody", { id: "rating-rows" }),
      ),
    ),
    el("p", { id: "ratings-empty", class: "muted", text: "No ratings yet.", hidden: true }),
  );
}

// ------------------------------------------------------------------------------------------------ reports

function period() {
  const choice = $("report-period").value;
  if (choice === "custom") {
    const to = $("report-to").value ? new Date(`${$("report-to").value}T00:00:00Z`) : new Date();
    to.setUTCDate(to.getUTCDate() + 1); // the last day shown is included
    return { from: $("report-from").value, to: isoDay(to) };
  }
  const to = new Date();
  to.setUTCDate(to.getUTCDate() + 1);
  const from = new Date(to);
  from.setUTCDate(from.getUTCDate() - Number(choice));
  return { from: isoDay(from), to: isoDay(to) };
}

async function loadReport() {
  $("report-error").textContent = "";
  const params = new URLSearchParams(period());
  if ($("report-queue").value) params.set("queue_id", $("report-queue").value);
  try {
    const summary = await call(`/api/supervisor/reports/summary?${params}`);
    drawTiles(summary);
    drawDays(summary.by_day);
    drawTimes(summary);
  } catch (error) {
    $("report-error").textContent = error.message;
  }
}

function drawTiles(summary) {
  const csat = summary.csat.average === null ? "–" : `${summary.csat.average.toFixed(2)} / 5`;
  const tiles = [
    ["Chats opened", summary.chats_opened],
    ["Chats closed", summary.chats_closed],
    ["Messages in / out", `${summary.messages_in} / ${summary.messages_out}`],
    ["First response p50 / p90", `${duration(summary.first_response_seconds.p50)} / ${duration(summary.first_response_seconds.p90)}`],
    ["Resolution p50 / p90", `${duration(summary.resolution_seconds.p50)} / ${duration(summary.resolution_seconds.p90)}`],
    ["CSAT", `${csat} (${summary.csat.responses})`],
  ];
  $("report-tiles").replaceChildren(
    ...tiles.map(([label, value]) => el("div", { class: "tile" }, el("span", { class: "tile-label", text: label }), el("strong", { class: "tile-value", text: String(value) }))),
  );
}

function niceMax(value) {
  if (value <= 5) return 5;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

function drawDays(days) {
  const width = 720, height = 240, left = 40, bottom = 28, top = 12;
  const plotW = width - left - 10, plotH = height - top - bottom;
  const max = niceMax(Math.max(1, ...days.map((d) => Math.max(d.chats_opened, d.chats_closed))));
  const slot = plotW / Math.max(1, days.length);
  const bar = Math.max(1, Math.min(14, slot / 2 - 1));
  const y = (v) => top + plotH - (v / max) * plotH;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Chats opened and closed per day", class: "chart-svg", id: "svg-days" });
  for (let i = 0; i <= 4; i++) {
    const value = (max / 4) * i;
    chart.append(svg("line", { x1: left, x2: width - 10, y1: y(value), y2: y(value), class: "grid" }));
    chart.append(svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", class: "axis", text: String(Math.round(value)) }));
  }
  const every = Math.max(1, Math.ceil(days.length / 8));
  days.forEach((day, i) => {
    const x = left + i * slot + slot / 2;
    for (const [kind, value, dx] of [["opened", day.chats_opened, -bar], ["closed", day.chats_closed, 0]]) {
      chart.append(
        svg("rect", { x: x + dx, y: y(value), width: bar, height: Math.max(0, top + plotH - y(value)), class: `bar-${kind}`, "data-date": day.date },
          svg("title", { text: `${day.date}: ${value} ${kind}` })),
      );
    }
    if (i % every === 0) chart.append(svg("text", { x, y: height - 8, "text-anchor": "middle", class: "axis", text: day.date.slice(5) }));
  });
  chart.append(svg("rect", { x: left + 8, y: top, width: 10, height: 10, class: "bar-opened" }), svg("text", { x: left + 22, y: top + 9, class: "axis", text: "opened" }));
  chart.append(svg("rect", { x: left + 80, y: top, width: 10, height: 10, class: "bar-closed" }), svg("text", { x: left + 94, y: top + 9, class: "axis", text: "closed" }));
  $("chart-days").replaceChildren(chart);
}

function drawTimes(summary) {
  const rows = [
    ["First response p50", summary.first_response_seconds.p50],
    ["First response p90", summary.first_response_seconds.p90],
    ["Resolution p50", summary.resolution_seconds.p50],
    ["Resolution p90", summary.resolution_seconds.p90],
  ];
  const width = 420, left = 130, rowH = 34, height = rows.length * rowH + 10;
  const max = Math.max(1, ...rows.map(([, v]) => v ?? 0));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Response and resolution times", class: "chart-svg", id: "svg-times" });
  rows.forEach(([label, value], i) => {
    const y = 6 + i * rowH;
    const w = value ? ((width - left - 90) * value) / max : 0;
    chart.append(svg("text", { x: left - 8, y: y + 17, "text-anchor": "end", class: "axis", text: label }));
    chart.append(svg("rect", { x: left, y: y + 4, width: w, height: 20, class: i < 2 ? "bar-opened" : "bar-closed" }, svg("title", { text: `${label}: ${duration(value)}` })));
    chart.append(svg("text", { x: left + w + 6, y: y + 18, class: "axis", text: duration(value) }));
  });
  $("chart-times").replaceChildren(chart);
}

// ------------------------------------------------------------------------------------------ business hours

function fillHours(queue) {
  const hours = queue?.business_hours;
  $("hours-always").checked = !hours;
  $("hours-fields").hidden = !hours;
  $("hours-zone").value = hours?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC";
  for (const [key] of DAYS) {
    $(`hours-${key}`).value = (hours?.weekly?.[key] ?? []).map(([start, end]) => `${start}-${end}`).join(", ");
  }
  $("hours-holidays").value = (hours?.holidays ?? []).join("\n");
  $("hours-greeting").value = queue?.greeting_text ?? "";
  $("hours-away").value = queue?.out_of_hours_text ?? "";
  $("csat-enabled").checked = Boolean(queue?.csat?.enabled);
  $("csat-question").value = queue?.csat?.question ?? "How did we do? Reply with a number from 1 (poor) to 5 (great).";
  $("hours-result").textContent = "";
  $("hours-error").textContent = "";
}

function readHours() {
  if ($("hours-always").checked) return null;
  const weekly = {};
  for (const [key, name] of DAYS) {
    const text = $(`hours-${key}`).value.trim();
    if (!text) continue;
    weekly[key] = text.split(",").map((part) => {
      const found = part.trim().match(/^(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})$/);
      if (!found) throw new Error(`${name}: write intervals as 09:00-18:00, separated by commas`);
      return [found[1].padStart(5, "0"), found[2].padStart(5, "0")];
    });
  }
  const holidays = $("hours-holidays").value.split(/[\s,]+/).filter(Boolean);
  return { timezone: $("hours-zone").value.trim(), weekly, holidays };
}

async function saveHours(event) {
  event.preventDefault();
  $("hours-error").textContent = "";
  $("hours-result").textContent = "";
  const id = $("hours-queue").value;
  try {
    const changes = {
      business_hours: readHours(),
      greeting_text: $("hours-greeting").value.trim() || null,
      out_of_hours_text: $("hours-away").value.trim() || null,
      csat: { enabled: $("csat-enabled").checked, question: $("csat-question").value.trim() },
    };
    const saved = await call(`/api/supervisor/queues/${encodeURIComponent(id)}`, { method: "PATCH", body: changes });
    view.queues = view.queues.map((q) => (q.id === saved.id ? saved : q));
    fillHours(saved);
    $("hours-result").textContent = "Saved.";
  } catch (error) {
    $("hours-error").textContent = error.message;
  }
}

// ------------------------------------------------------------------------------------------------- ratings

async function loadRatings() {
  const closed = await call("/api/chats?status=closed&limit=100");
  const rated = closed.items.filter((chat) => chat.rating);
  $("ratings-empty").hidden = rated.length > 0;
  $("rating-rows").replaceChildren(
    ...rated.map((chat) =>
      el("tr", { "data-chat-id": chat.id },
        el("td", { text: chat.contact?.name ?? "Unknown contact" }),
        el("td", {}, el("span", { class: "stars", "aria-label": `${chat.rating.score} of 5`, text: "★".repeat(chat.rating.score) + "☆".repeat(5 - chat.rating.score) })),
        el("td", { text: chat.rating.comment || "–" }),
        el("td", { text: chat.closed_at ? new Date(chat.closed_at).toLocaleString() : "" }),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------- start-up

async function load() {
  try {
    view.queues = (await call("/api/supervisor/queues")).items;
  } catch (error) {
    $("report-error").textContent = error.message;
    return;
  }
  const options = () => view.queues.map((q) => el("option", { value: q.id, text: q.name }));
  $("report-queue").replaceChildren(el("option", { value: "", text: "All queues" }), ...options());
  const chosen = $("hours-queue").value;
  $("hours-queue").replaceChildren(...options());
  if (chosen) $("hours-queue").value = chosen;
  fillHours(view.queues.find((q) => q.id === $("hours-queue").value) ?? view.queues[0]);
  await Promise.all([loadReport(), loadRatings().catch(() => {})]);
}

function install() {
  const section = $("supervisor");
  if (!section || $("reports-panel")) return;
  section.prepend(reportsPanel());
  const updated = $("overview-time"); // console.js's last line stays the section's last
  if (updated) updated.before(hoursPanel(), ratingsPanel());
  else section.append(hoursPanel(), ratingsPanel());
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ["UTC", "Europe/Berlin"];
  $("hours-zones").replaceChildren(...zones.map((zone) => el("option", { value: zone })));
  $("report-period").addEventListener("change", () => {
    $("report-custom").hidden = $("report-period").value !== "custom";
  });
  $("report-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadReport();
  });
  $("hours-queue").addEventListener("change", () => fillHours(view.queues.find((q) => q.id === $("hours-queue").value)));
  $("hours-always").addEventListener("change", () => {
    $("hours-fields").hidden = $("hours-always").checked;
  });
  $("hours-form").addEventListener("submit", saveHours);
  // console.js shows the section to supervisors; each time it does, the figures are read again.
  new MutationObserver(() => {
    if (!section.hidden) load();
  }).observe(section, { attributes: true, attributeFilter: ["hidden"] });
  if (!section.hidden) load();
}

install();
