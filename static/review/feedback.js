// Thumbs up/down and "Report this answer" under each finished answer of the chat page.
// chat.js announces every answer's state with an "answer-state" event; this script adds
// the controls and talks to /messages/<id>/feedback/ (session + CSRF; owner only).
"use strict";

(function () {
  const REASONS = [
    ["wrong", "The answer is wrong"],
    ["harmful", "Harmful or offensive"],
    ["private", "It shows personal data"],
    ["other", "Something else"],
  ];
  const known = new Map(); // message id -> {rating, reported}
  let loaded = null;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function conversationId() {
    const root = document.getElementById("conversation");
    return root && root.dataset.conversationId;
  }

  function loadStates() {
    // What this person already said about the answers on the page (after a reload).
    if (loaded) return loaded;
    const id = conversationId();
    loaded = !id
      ? Promise.resolve()
      : fetch(`/conversations/${id}/feedback/`, { headers: { Accept: "application/json" } })
          .then((r) => (r.ok ? r.json() : { feedback: [] }))
          .then((data) => data.feedback.forEach((f) => known.set(String(f.message_id), f)))
          .catch(() => {});
    return loaded;
  }

  function button(text, label) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "small";
    el.textContent = text;
    el.setAttribute("aria-label", label);
    el.title = label;
    return el;
  }

  // A thumb drawn as SVG, so it shows on machines without an emoji font.
  function thumbButton(direction, label) {
    const el = button("", label);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "16");
    svg.setAttribute("height", "16");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M2 10h4v11H2zM8 10l4-8c1.5 0 2.5 1 2.5 2.5L14 9h6c1.1 0 2 .9 2 2l-2 8c-.3 1.2-1.2 2-2.4 2H8z");
    if (direction === "down") path.setAttribute("transform", "rotate(180 12 12)");
    svg.appendChild(path);
    el.appendChild(svg);
    return el;
  }

  async function send(messageId, body) {
    const response = await fetch(`/messages/${messageId}/feedback/`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || "Your feedback could not be sent.");
    known.set(String(messageId), data);
    return data;
  }

  function render(bar, state) {
    bar.querySelector(".up").setAttribute("aria-pressed", String(state.rating === "up"));
    bar.querySelector(".down").setAttribute("aria-pressed", String(state.rating === "down"));
    const reportButton = bar.querySelector(".report");
    const thanks = bar.querySelector(".thanks");
    if (state.reported) {
      reportButton.hidden = true;
      const form = bar.querySelector(".report-form");
      if (form) form.remove();
      thanks.textContent = "Reported. Thank you: a reviewer will look at it.";
    }
  }

  function addControls(item) {
    const messageId = item.dataset.messageId;
    if (!messageId || item.querySelector(".feedback")) return;
    const bar = document.createElement("div");
    bar.className = "feedback";
    const up = thumbButton("up", "Good answer");
    up.classList.add("up");
    const down = thumbButton("down", "Bad answer");
    down.classList.add("down");
    const report = button("Report this answer", "Report this answer");
    report.classList.add("report", "link");
    const thanks = document.createElement("span");
    thanks.className = "thanks";
    thanks.setAttribute("role", "status");
    bar.append(up, down, report, thanks);
    item.appendChild(bar);

    const state = () => known.get(messageId) || { rating: null, reported: false };
    const fail = (err) => { thanks.textContent = err.message; };
    const rate = (value) => {
      const next = state().rating === value ? null : value; // pressing again takes it back
      send(messageId, { rating: next }).then((s) => { thanks.textContent = ""; render(bar, s); }).catch(fail);
    };
    up.addEventListener("click", () => rate("up"));
    down.addEventListener("click", () => rate("down"));
    report.addEventListener("click", () => {
      if (bar.querySelector(".report-form")) return;
      const form = document.createElement("form");
      form.className = "report-form";
      const select = document.createElement("select");
      select.name = "reason";
      select.setAttribute("aria-label", "Why are you reporting this answer?");
      for (const [value, text] of REASONS) select.add(new Option(text, value));
      const submit = button("Send report", "Send report");
      submit.type = "submit";
      form.append(select, submit);
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        submit.disabled = true;
        send(messageId, { report: select.value }).then((s) => render(bar, s)).catch((err) => {
          submit.disabled = false;
          fail(err);
        });
      });
      report.after(form);
      select.focus();
    });
    loadStates().then(() => render(bar, state()));
  }

  document.addEventListener("answer-state", (ev) => {
    const item = ev.target;
    const status = ev.detail && ev.detail.status;
    if (status === "done" || status === "aborted") addControls(item);
  });
})();
