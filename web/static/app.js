// xymon-mqtt dashboard: live updates over Server-Sent Events. Every untrusted string is put into the page
// with textContent or as an attribute value, never as HTML, and in its visible form (see visible()).
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.page || "";

  // MQTT topic filter matching (as the server does it).
  function matches(filter, topic) {
    if (!filter) return true;
    const f = filter.split("/"), t = topic.split("/");
    if (topic.startsWith("$") && !(f[0].startsWith("$"))) return false;
    for (let i = 0; i < f.length; i++) {
      if (f[i] === "#") return true;
      if (i >= t.length) return false;
      if (f[i] !== "+" && f[i] !== t[i]) return false;
    }
    return f.length === t.length;
  }

  // Format characters (Unicode Cf: bidi controls such as U+202E, zero-width characters) and control
  // characters other than tab and line breaks are shown as their code points, [U+202E], as the server
  // shows them in its pages (text::visible).
  function visible(s) {
    return s.replace(/[\p{Cf}\p{Cc}]/gu, (c) => /[\t\n\r]/.test(c) ? c
      : "[U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "]");
  }

  function human(secs) {
    const s = Math.max(0, Math.floor(secs));
    const p = (n) => String(n).padStart(2, "0");
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + p(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + p(Math.floor(s % 3600 / 60)) + "m";
    return Math.floor(s / 86400) + "d" + p(Math.floor(s % 86400 / 3600)) + "h";
  }

  function tickAges() {
    const now = Date.now();
    document.querySelectorAll("td.age time[data-t]").forEach((el) => {
      const t = Date.parse(el.dataset.t);
      if (!isNaN(t)) el.textContent = human((now - t) / 1000);
    });
  }

  function shown(item) {
    let v = item.payload;
    if (v.length > 300) v = v.slice(0, 300) + "…";
    else if (item.truncated) v += "…";
    return visible(v);
  }

  function fillRow(tr, item) {
    tr.classList.remove("missing");
    const cell = (cls) => tr.querySelector("td." + cls);
    const value = cell("value");
    value.textContent = "";
    if (item.binary) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "base64";
      value.append(tag, " ");
    }
    value.append(shown(item));
    const age = cell("age");
    age.textContent = "";
    const time = document.createElement("time");
    time.dataset.t = item.received_at;
    time.title = item.received_at;
    time.textContent = human(item.age_seconds);
    age.append(time);
    tr.classList.remove("flash");
    void tr.offsetWidth;
    tr.classList.add("flash");
  }

  function findRow(tbody, item) {
    for (const tr of tbody.rows) {
      // The page holds the visible form of each topic.
      if (tr.dataset.topic === visible(item.topic) && tr.dataset.broker === item.broker) return tr;
    }
    return null;
  }

  function newRow(tbody, item) {
    const tr = document.createElement("tr");
    tr.dataset.topic = visible(item.topic);
    tr.dataset.broker = item.broker;
    for (const cls of ["topic", "value", "age", "broker"]) {
      const td = document.createElement("td");
      td.className = cls;
      tr.append(td);
    }
    tr.cells[0].textContent = visible(item.topic);
    tr.cells[3].textContent = item.broker;
    // Keep the table sorted by broker, then topic.
    let before = null;
    for (const r of tbody.rows) {
      const b = r.dataset.broker, t = r.dataset.topic;
      if (b > item.broker || (b === item.broker && t > tr.dataset.topic)) { before = r; break; }
    }
    tbody.insertBefore(tr, before);
    return tr;
  }

  function onTopic(item) {
    const table = document.getElementById("topics");
    if (!table) return;
    const tbody = table.tBodies[0];
    let tr = findRow(tbody, item);
    if (!tr) {
      if (page !== "topics" || !matches(body.dataset.filter || "#", item.topic)) return;
      if (tbody.rows.length >= 1000) return;
      tr = newRow(tbody, item);
    }
    fillRow(tr, item);
  }

  function onTest(item) {
    const key = item.host + "." + item.test;
    document.querySelectorAll(".dot[data-key]").forEach((el) => {
      if (el.dataset.key === key) el.className = "dot " + item.colour;
    });
    if (page === "test" && body.dataset.key === key) {
      // Re-read the server-rendered (escaped) status text; DOMParser runs no scripts.
      fetch(location.href, { credentials: "same-origin" }).then((r) => r.text()).then((html) => {
        const doc = new DOMParser().parseFromString(html, "text/html");
        for (const id of ["status", "delivery"]) {
          const fresh = doc.getElementById(id), old = document.getElementById(id);
          if (fresh && old) old.replaceWith(document.importNode(fresh, true));
        }
      }).catch(() => {});
    }
  }

  function onBroker(b) {
    const table = document.getElementById("brokers");
    if (!table) return;
    for (const tr of table.tBodies[0].rows) {
      if (tr.dataset.broker !== b.name) continue;
      tr.querySelector(".dot").className = "dot " + (b.connected ? "green" : "red");
      tr.querySelector("td.state").textContent = b.connected ? (b.subscribed ? "connected" : "connected (subscribing)") : "disconnected";
      tr.querySelector("td.messages").textContent = String(b.messages);
      tr.querySelector("td.last").textContent = b.last_message || "";
      tr.querySelector("td.since").textContent = b.since || "";
      tr.querySelector("td.error").textContent = visible(b.last_error || "");
    }
  }

  function connect() {
    if (!window.EventSource) return;
    const live = document.getElementById("live");
    const es = new EventSource("/api/v1/events");
    es.onopen = () => { live.textContent = "live"; live.className = "live on"; };
    es.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
    const on = (name, fn) => es.addEventListener(name, (e) => {
      try { fn(JSON.parse(e.data)); } catch (err) { /* ignore a malformed event */ }
    });
    on("topic", onTopic);
    on("test", onTest);
    on("broker", onBroker);
  }

  setInterval(tickAges, 1000);
  connect();
})();
