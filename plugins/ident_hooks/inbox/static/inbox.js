// The leads inbox page: one row per person (a conversation of their open leads from any
// source, with their patient card, visits and freed time; a call with the number dialled,
// marked «Звонит сейчас» while it rings); fetches the open leads when the server pushes that they changed
// (server-sent events), polls them when it cannot, keeps the waiting times live, announces
// new leads (highlight, browser notification, a short chime), counts down each lead's time to
// escalation (its SLA; the integration_health DAG escalates it to the branch's front desk)
// and sends the admin's actions.
"use strict";

(() => {
  const page = document.body.dataset;
  const config = {
    refreshMs: Number(page.refreshSeconds) * 1000,
    push: page.push === "on",
    heartbeatMs: Number(page.heartbeatSeconds) * 1000,
    targetSeconds: Number(page.targetSeconds),
    callRingingSeconds: Number(page.callRingingSeconds),
    escalationSeconds: Number(page.escalationSeconds),
    myBranches: new Set((page.myBranches || "").split(",").filter(Boolean)),
    listLimit: Number(page.listLimit),
    user: page.user,
    csrfToken: page.csrfToken,
  };
  // A highlighted lead counts as seen once the page has been on screen this long after it came.
  const SEEN_AFTER_MS = 30_000;
  const STORAGE_LAST_SEEN = "identInbox.lastSeenLeadId";
  const STORAGE_SOUND = "identInbox.sound";
  const MAX_NOTIFICATIONS = 3;
  // While pushes arrive the page still fetches the list this often, in case one got lost.
  const PUSHED_REFRESH_MS = 60_000;
  // After the push channel failed for good (an error answer), try it again this much later.
  const PUSH_RETRY_MS = 30_000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    summary: $("summary"),
    banner: $("banner"),
    rows: $("leads"),
    empty: $("empty"),
    filters: $("filters"),
    branch: $("filter-branch"),
    source: $("filter-source"),
    search: $("filter-search"),
    sound: $("sound"),
    enableNotifications: $("enable-notifications"),
    notificationsBlocked: $("notifications-blocked"),
    dialog: $("close-dialog"),
    dialogTitle: $("close-dialog-title"),
    dialogLead: $("close-dialog-lead"),
    dialogComment: $("close-dialog-comment"),
    toast: $("toast"),
    announcer: $("announcer"),
  };

  let leads = [];
  let receivedAt = 0; // performance.now() when `leads` arrived: waiting times count from it
  let knownMaxId = null; // the newest lead id this tab has shown; null before the first list
  let lastSeenId = Number(localStorage.getItem(STORAGE_LAST_SEEN) || 0);
  let pendingSeen = null; // {id, since}: the newest lead, on screen since `since`
  let request = null; // the list request in flight, if any
  let refreshAgain = false; // a push came while a request was in flight: fetch once more
  let listedAt = 0; // Date.now() of the last list received
  let stream = null; // the EventSource of the push channel, when the browser has one
  let streamOpenedAt = 0;
  let lastPushAt = 0; // Date.now() of the last event on the push channel
  let rowsById = new Map(); // lead id -> {row, signature}
  let dialogAction = null; // {leadId, action} the open dialog will send

  // ---- formatting -------------------------------------------------------------------------
  const timeFormat = new Intl.DateTimeFormat("ru-RU", { hour: "2-digit", minute: "2-digit" });
  const secondsFormat = new Intl.DateTimeFormat("ru-RU", {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const dayTimeFormat = new Intl.DateTimeFormat("ru-RU", {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });
  const browserTimeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const visitFormat = new Intl.DateTimeFormat("ru-RU", {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });
  const dateFormat = new Intl.DateTimeFormat("ru-RU", {
    day: "numeric", month: "short", year: "numeric",
  });

  function formatDuration(totalSeconds) {
    const seconds = Math.max(0, Math.floor(totalSeconds));
    const days = Math.floor(seconds / 86400);
    const hours = Math.floor((seconds % 86400) / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    if (days) return `${days} дн ${hours} ч`;
    if (hours) return `${hours} ч ${minutes} мин`;
    if (minutes) return `${minutes} мин ${String(seconds % 60).padStart(2, "0")} с`;
    return `${seconds} с`;
  }

  function formatMoment(iso) {
    const moment = new Date(iso);
    const today = new Date().toDateString() === moment.toDateString();
    return (today ? timeFormat : dayTimeFormat).format(moment);
  }

  function formatNumber(e164) {
    const russian = e164 && /^\+7(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(e164);
    if (russian) return `+7 ${russian[1]} ${russian[2]}-${russian[3]}-${russian[4]}`;
    return e164 || "";
  }

  function formatPhone(lead) {
    return formatNumber(lead.phone_e164) || lead.phone_raw || "";
  }

  // Where the number a call was made to stands («ПроДокторов: профиль клиники ·
  // Агрегаторы»), or the number itself when the clinic's numbers map does not have it.
  function dialledText(call) {
    if (call.label) return [call.label, call.channel_label].filter(Boolean).join(" · ");
    return call.dialled_number ? `на ${formatNumber(call.dialled_number)}` : "номер не передан";
  }

  // The requested time as the patient chose it: in the branch's time zone, which is named
  // (GMT+5) when it is not the admin's own.
  function formatRequested(lead) {
    if (!lead.requested_start) return "";
    const timeZone = lead.branch_timezone || browserTimeZone;
    const zone = timeZone === browserTimeZone ? {} : { timeZoneName: "short" };
    const day = { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone };
    try {
      if (!lead.requested_end) {
        return new Intl.DateTimeFormat("ru-RU", { ...day, ...zone })
          .format(new Date(lead.requested_start));
      }
      const start = new Intl.DateTimeFormat("ru-RU", day).format(new Date(lead.requested_start));
      const end = new Intl.DateTimeFormat("ru-RU", {
        hour: "2-digit", minute: "2-digit", timeZone, ...zone,
      }).format(new Date(lead.requested_end));
      return `${start}–${end}`;
    } catch {
      return dayTimeFormat.format(new Date(lead.requested_start)); // an unknown time zone
    }
  }

  // A call rings for a while after its notification came: the row says so until then.
  function isRinging(lead) {
    if (!lead.call || lead.status !== "new") return false;
    return lead.call_seconds + (performance.now() - receivedAt) / 1000 < config.callRingingSeconds;
  }

  function waitingSeconds(lead) {
    if (lead.status !== "new") return lead.waiting_seconds;
    return lead.waiting_seconds + (performance.now() - receivedAt) / 1000;
  }

  // ---- rendering --------------------------------------------------------------------------
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function button(label, action, leadId, style) {
    const node = element("button", style || "", label);
    node.type = "button";
    node.dataset.action = action;
    node.dataset.leadId = String(leadId);
    return node;
  }

  // A conversation's newest lead: a lead joining a row makes it news again.
  function newestId(lead) {
    return lead.newest_lead_id || lead.lead_id;
  }

  function isUnseen(lead) {
    return newestId(lead) > lastSeenId;
  }

  // What a row shows apart from the waiting time, which tick() keeps current in place:
  // a row whose signature is unchanged is kept, with any focus inside it.
  function signature(lead) {
    const { waiting_seconds: _waiting, call_seconds: _called, ...shown } = lead;
    return JSON.stringify([shown, isUnseen(lead)]);
  }

  // The sources of a conversation, oldest first: each one's label and time, and its comment
  // and doctor where they differ from the previous one's.
  function buildSources(sources) {
    const list = element("ol", "sources");
    let previous = null;
    for (const item of sources) {
      const entry = element("li", "source-item");
      entry.dataset.leadId = String(item.lead_id);
      entry.append(element("span", "source-label", item.source_label),
        element("span", "muted small", ` ${formatMoment(item.created_at)}`));
      if (item.call) entry.append(element("span", "call-dialled", dialledText(item.call)));
      if (item.doctor_name && item.doctor_name !== previous?.doctor_name) {
        entry.append(element("span", "source-doctor", item.doctor_name));
      }
      if (item.comment && item.comment !== previous?.comment) {
        entry.append(element("span", "comment", item.comment));
      }
      list.append(entry);
      previous = item;
    }
    return list;
  }

  function formatVisit(iso) {
    return visitFormat.format(new Date(iso));
  }

  function cardName(card) {
    const born = card.birth_date ? `, ${dateFormat.format(new Date(card.birth_date))}` : "";
    return `${card.full_name}${born}`;
  }

  const GRADE_TEXT = {
    certain: "Карта пациента", probable: "Вероятно, карта", possible: "Возможно, это",
  };

  // Who the person is: the confirmed card, else what matching found, their visits, the
  // family on the same phone, and one-click buttons to confirm a card or a new patient.
  function buildPatient(lead) {
    const info = lead.patient;
    if (!info) return null;
    const box = element("div", "patient-card");
    box.dataset.state = info.state;
    const line = element("div", "patient-state");
    if (info.state === "chosen" && info.card) {
      line.append(`Карта подтверждена: ${cardName(info.card)}`);
    } else if (info.state === "new_patient") {
      line.append("Новый пациент (подтверждено)");
    } else if (info.state === "none") {
      line.append("Карта не найдена");
    } else if (info.card) {
      line.append(`${GRADE_TEXT[info.state]}: ${cardName(info.card)}`);
    } else {
      line.append(`${GRADE_TEXT[info.state]}: `
        + info.candidates.map((card) => card.full_name).join(", "));
    }
    if (info.chosen_by) line.append(element("span", "muted small", ` (${info.chosen_by})`));
    box.append(line);
    if (info.visitor) {
      box.append(element("span", `badge visitor visitor-${info.visitor}`,
        info.visitor === "returning" ? "Повторный пациент" : "Новый пациент"));
    }
    if (info.last_visit) {
      box.append(element("div", "last-visit", "Последний визит: "
        + [formatVisit(info.last_visit.starts_at), info.last_visit.doctor_name]
          .filter(Boolean).join(", ")));
    }
    if (info.next_appointment) {
      const next = info.next_appointment;
      box.append(element("div", "next-appointment", "Уже записан: "
        + [formatVisit(next.starts_at), next.doctor_name, next.branch_name]
          .filter(Boolean).join(", ")));
    }
    if (info.family.length) {
      box.append(element("div", "family", "Семья на этом номере: "
        + info.family.map((member) => member.full_name).join(", ")));
    }
    if (lead.freed_slot) {
      const slot = lead.freed_slot;
      box.append(element("div", "freed-slot", "Освободилось время: "
        + [slot.doctor_name, formatVisit(slot.starts_at)].filter(Boolean).join(", ")));
    }
    if (info.state !== "chosen" && info.state !== "new_patient") {
      const confirm = element("div", "patient-confirm");
      for (const card of info.candidates) {
        const choose = button(`Это ${card.full_name}`, "patient", lead.lead_id, "secondary small");
        choose.dataset.patientId = card.patient_id;
        confirm.append(choose);
      }
      confirm.append(button("Новый пациент", "patient", lead.lead_id, "secondary small"));
      box.append(confirm);
    }
    return box;
  }

  function buildRow(lead) {
    const row = element("tr", "lead");
    row.dataset.leadId = String(lead.lead_id);
    row.dataset.status = lead.status;
    row.classList.toggle("is-unseen", isUnseen(lead));
    row.classList.toggle("is-taken", lead.status === "in_progress");
    row.classList.toggle("is-my-branch", config.myBranches.has(lead.branch_id));

    const wait = element("td", "wait");
    const waitValue = element("span", "wait-value");
    const overdueLabel = element("span", "overdue-label",
      `дольше ${Math.round(config.targetSeconds / 60)} мин`);
    if (lead.status !== "new") wait.append(element("span", "muted small", "ответ через"));
    wait.append(waitValue, overdueLabel, element("span", "sla small"), element("span",
      "muted small", `поступила ${formatMoment(lead.created_at)}`));

    const source = element("td", "source");
    const sources = lead.sources || [];
    if (lead.call) {
      const call = element("div", "call");
      call.append(element("span", "badge badge-call", "Звонок"));
      if (sources.length <= 1) call.append(element("span", "call-dialled", dialledText(lead.call)));
      source.append(call);
    }
    if (sources.length > 1) {
      source.append(buildSources(sources));
    } else {
      source.append(element("span", "source-label", lead.source_label));
    }
    if (isUnseen(lead)) source.prepend(element("span", "badge badge-new", "Новая"));
    if (lead.campaign) {
      const campaign = element("span", "campaign", lead.campaign);
      campaign.title = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"]
        .filter((key) => lead[key]).map((key) => `${key}=${lead[key]}`).join("\n");
      source.append(campaign);
    } else if (lead.referrer_host) {
      source.append(element("span", "campaign", lead.referrer_host));
    }

    const patient = element("td", "patient");
    patient.append(element("span", "name", lead.name || "Без имени"));
    const phone = formatPhone(lead);
    if (phone) {
      const link = element("a", "phone", phone);
      link.href = `tel:${lead.phone_e164 || lead.phone_raw}`;
      patient.append(link);
    }
    if (lead.comment && sources.length <= 1) {
      patient.append(element("span", "comment", lead.comment));
    }
    const card = buildPatient(lead);
    if (card) patient.append(card);

    const doctor = element("td", "doctor");
    if (lead.doctor_name) doctor.append(element("span", "", lead.doctor_name));
    const requested = formatRequested(lead);
    if (requested) doctor.append(element("span", "requested", requested));
    if (!lead.doctor_name && !requested) doctor.append(element("span", "muted", "—"));

    const branch = element("td", "branch", lead.branch_name || "—");
    if (config.myBranches.has(lead.branch_id)) {
      branch.append(element("span", "badge badge-mine", "ваш филиал"));
    }

    const actions = element("td", "actions");
    if (lead.status === "in_progress") {
      const mine = lead.taken_by === config.user;
      const who = mine ? "у вас" : lead.taken_by;
      actions.append(element("span", mine ? "badge badge-mine" : "badge badge-taken",
        `В работе ${who} с ${formatMoment(lead.taken_at)}`));
    } else {
      actions.append(button("Взять в работу", "take", lead.lead_id));
    }
    actions.append(
      button("Обработана", "close", lead.lead_id, "secondary"),
      button("Спам / дубль", "spam", lead.lead_id, "secondary danger"),
    );

    row.append(wait, source, patient, doctor, branch, actions);
    updateWait(row, lead);
    return row;
  }

  // The SLA: time left before the lead is escalated to its branch's front desk, or when it
  // was; a lead past its time is highlighted at once, the alert follows within a minute.
  function slaText(lead, seconds) {
    if (lead.escalated_at) return `эскалирована в ${formatMoment(lead.escalated_at)}`;
    if (lead.status !== "new") {
      return seconds <= config.escalationSeconds ? "взята в срок" : "взята позже срока";
    }
    const left = config.escalationSeconds - seconds;
    return left > 0 ? `до эскалации ${formatDuration(left)}` : "эскалация…";
  }

  function updateWait(row, lead) {
    const seconds = waitingSeconds(lead);
    row.querySelector(".wait-value").textContent = formatDuration(seconds);
    row.querySelector(".sla").textContent = slaText(lead, seconds);
    row.classList.toggle("is-overdue", seconds >= config.targetSeconds);
    row.classList.toggle("is-escalated", Boolean(lead.escalated_at)
      || (lead.status === "new" && seconds >= config.escalationSeconds));
    const callBadge = row.querySelector(".badge-call");
    if (callBadge) {
      const ringing = isRinging(lead);
      row.classList.toggle("is-ringing", ringing);
      callBadge.textContent = ringing ? "Звонит сейчас" : "Звонок";
    }
  }

  function render(total) {
    const wanted = leads.map((lead) => {
      const key = signature(lead);
      const known = rowsById.get(lead.lead_id);
      if (known && known.signature === key) return known;
      return { row: buildRow(lead), signature: key };
    });
    // Move only what changed, so a focused button keeps its focus across refreshes.
    let cursor = ui.rows.firstElementChild;
    for (const { row } of wanted) {
      if (row === cursor) {
        cursor = cursor.nextElementSibling;
      } else {
        ui.rows.insertBefore(row, cursor);
      }
    }
    while (cursor) {
      const next = cursor.nextElementSibling;
      cursor.remove();
      cursor = next;
    }
    rowsById = new Map(wanted.map((entry, index) => [leads[index].lead_id, entry]));
    leads.forEach((lead, index) => updateWait(wanted[index].row, lead));

    const filtered = Boolean(ui.branch.value || ui.source.value || ui.search.value.trim());
    ui.empty.hidden = leads.length > 0;
    ui.empty.textContent = filtered ? "Ничего не найдено." : "Открытых заявок нет.";
    if (total !== undefined) renderSummary(total);
    const unseen = leads.filter(isUnseen).length;
    document.title = unseen ? `(${unseen}) Заявки` : "Заявки";
  }

  function renderSummary(total) {
    const waiting = leads.filter((lead) => lead.status === "new").length;
    const parts = [`Открытых заявок: ${total}`, `ждут ответа: ${waiting}`,
      `в работе: ${leads.length - waiting}`];
    if (total > leads.length) parts.push(`показаны ${config.listLimit} самых новых`);
    ui.summary.textContent = parts.join(" · ");
  }

  function tick() {
    for (const lead of leads) {
      const entry = rowsById.get(lead.lead_id);
      if (entry && lead.status === "new") updateWait(entry.row, lead);
    }
    markSeen();
  }

  // ---- "new since you last looked" -------------------------------------------------------
  function markSeen() {
    const newest = leads.reduce((max, lead) => Math.max(max, newestId(lead)), 0);
    if (newest <= lastSeenId || document.visibilityState !== "visible") {
      pendingSeen = null;
      return;
    }
    if (!pendingSeen || pendingSeen.id !== newest) {
      pendingSeen = { id: newest, since: Date.now() };
    } else if (Date.now() - pendingSeen.since >= SEEN_AFTER_MS) {
      lastSeenId = newest;
      localStorage.setItem(STORAGE_LAST_SEEN, String(newest));
      pendingSeen = null;
      render();
    }
  }

  // ---- loading ----------------------------------------------------------------------------
  function filterQuery() {
    const params = new URLSearchParams();
    if (ui.branch.value) params.set("branch", ui.branch.value);
    if (ui.source.value) params.set("source", ui.source.value);
    if (ui.search.value.trim()) params.set("q", ui.search.value.trim());
    return params.toString();
  }

  // `restart` replaces a request in flight; `baseline` takes the answer as the new normal
  // (new filters), not as news to announce.
  // `followUp` (a push): a request in flight may predate the change, so fetch again after it.
  async function refresh({ restart = false, baseline = false, followUp = false } = {}) {
    if (request) {
      if (!restart) {
        refreshAgain = refreshAgain || followUp;
        return; // still waiting for the previous answer
      }
      request.abort();
    }
    const controller = new AbortController();
    request = controller;
    const timeout = setTimeout(() => controller.abort(), Math.max(config.refreshMs, 5000));
    try {
      const response = await fetch(`api/leads?${filterQuery()}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
      if (response.status === 401 || response.status === 403) {
        showBanner("Сессия истекла. ", "Войти снова", window.location.href);
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      receive(await response.json(), baseline);
      hideBanner();
      ui.status.textContent = `Обновлено в ${secondsFormat.format(new Date())}` +
        (pushLive() ? " · мгновенно" : ` · каждые ${config.refreshMs / 1000} с`);
    } catch {
      if (controller.signal.aborted && request !== controller) return; // replaced by a newer one
      showBanner(`Нет связи с сервером, повтор через ${config.refreshMs / 1000} с.`);
    } finally {
      clearTimeout(timeout);
      if (request === controller) {
        request = null;
        if (refreshAgain) {
          refreshAgain = false;
          refresh();
        }
      }
    }
  }

  // ---- pushed changes ---------------------------------------------------------------------
  // The push channel is live while its stream is open and its heartbeats arrive: a proxy that
  // buffers the stream keeps it open but lets nothing through, and then the page polls.
  function pushLive() {
    return Boolean(stream) && stream.readyState === EventSource.OPEN &&
      Date.now() - lastPushAt < config.heartbeatMs * 2 + 5000;
  }

  function connectPush() {
    if (!config.push || !("EventSource" in window)) return;
    if (stream) stream.close();
    stream = new EventSource("api/events");
    streamOpenedAt = Date.now();
    const alive = () => { lastPushAt = Date.now(); };
    // On (re)connecting: changes may have come while the page was not listening.
    stream.addEventListener("ready", () => {
      alive();
      refresh({ followUp: true });
    });
    stream.addEventListener("leads", () => {
      alive();
      refresh({ followUp: true });
    });
    stream.addEventListener("heartbeat", alive);
    // A dropped stream reconnects by itself (readyState CONNECTING); an error answer closes
    // it for good (CLOSED). Either way pushLive() is false and the ticks poll meanwhile.
    stream.addEventListener("error", () => { lastPushAt = 0; });
  }

  // Each tick of the refresh interval: poll unless pushes are arriving, and revive the
  // push channel when it has failed or gone quiet.
  function onRefreshTick() {
    if (!pushLive()) {
      const quiet = stream && stream.readyState !== EventSource.CONNECTING;
      if ((!stream || quiet) && Date.now() - streamOpenedAt >= PUSH_RETRY_MS) connectPush();
      refresh();
    } else if (Date.now() - listedAt >= PUSHED_REFRESH_MS) {
      refresh();
    }
  }

  function receive(data, baseline) {
    const newest = data.leads.reduce((max, lead) => Math.max(max, newestId(lead)), 0);
    // The first list of this tab, or of new filters, is a baseline, not news.
    if (knownMaxId !== null && !baseline) {
      const arrived = data.leads.filter(
        (lead) => newestId(lead) > knownMaxId && lead.status === "new");
      if (arrived.length) announce(arrived);
    }
    knownMaxId = Math.max(knownMaxId || 0, newest);
    leads = data.leads;
    receivedAt = performance.now();
    listedAt = Date.now();
    config.csrfToken = data.csrf_token;
    render(data.total);
  }

  // ---- announcing new leads ---------------------------------------------------------------
  let audio = null;

  function unlockAudio() {
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!audio && AudioContextClass) audio = new AudioContextClass();
    if (audio && audio.state === "suspended") audio.resume();
  }

  function chime() {
    if (!ui.sound.checked) return;
    unlockAudio();
    if (!audio) return;
    const start = audio.currentTime + 0.02;
    [880, 1318.5].forEach((frequency, index) => {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      const at = start + index * 0.18;
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.16);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(at);
      oscillator.stop(at + 0.17);
    });
  }

  function describe(lead) {
    return [lead.name, formatPhone(lead), lead.branch_name].filter(Boolean).join(", ");
  }

  // The source of a row's newest lead: what just arrived, also when it joined a row.
  function newestSource(lead) {
    return (lead.sources || []).find((item) => item.lead_id === newestId(lead))
      || { source_label: lead.source_label, call: lead.call };
  }

  // «Звонок · ПроДокторов: профиль клиники» for a call, «Новая заявка · Tilda» otherwise.
  function newsTitle(lead, separator) {
    const newest = newestSource(lead);
    if (newest.call) return `Звонок${separator}${dialledText(newest.call)}`;
    return `Новая заявка${separator}${newest.source_label}`;
  }

  function announce(arrived) {
    chime();
    const first = arrived[0];
    ui.announcer.textContent = arrived.length === 1
      ? `${newsTitle(first, ": ")}, ${describe(first)}`
      : `Новых заявок: ${arrived.length}`;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const shown = arrived.slice(0, MAX_NOTIFICATIONS).map((lead) => ({
      title: newsTitle(lead, " · "), body: describe(lead),
      tag: `lead-${newestId(lead)}`,
    }));
    if (arrived.length > MAX_NOTIFICATIONS) {
      shown.push({
        title: `И ещё заявок: ${arrived.length - MAX_NOTIFICATIONS}`, body: "", tag: "leads-more",
      });
    }
    for (const { title, body, tag } of shown) {
      const notification = new Notification(title, { body, tag, lang: "ru" });
      notification.onclick = () => {
        window.focus();
        notification.close();
      };
    }
  }

  function showNotificationControls() {
    const supported = "Notification" in window;
    ui.enableNotifications.hidden = !supported || Notification.permission !== "default";
    ui.notificationsBlocked.hidden = !supported || Notification.permission !== "denied";
  }

  // ---- actions ----------------------------------------------------------------------------
  function post(leadId, action, body) {
    return fetch(`api/leads/${leadId}/${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRF-Token": config.csrfToken,
      },
      body: JSON.stringify(body),
    });
  }

  // `body`: {comment} for close and spam, {patient_id} for the patient's card.
  async function act(leadId, action, body = {}) {
    let response;
    let data = {};
    try {
      response = await post(leadId, action, body);
      if (response.status === 403) {
        // The server's signing key changed (a restart): the next list brings a new token.
        await refresh({ restart: true });
        response = await post(leadId, action, body);
      }
      data = await response.json().catch(() => ({}));
    } catch {
      showToast("Нет связи с сервером, действие не выполнено.", true);
      return;
    }
    if (response.ok) {
      const count = (data.lead_ids || []).length;
      const several = count > 1 ? ` (заявок: ${count})` : "";
      const done = { take: "Заявка взята в работу", close: "Заявка обработана",
        spam: "Заявка отмечена как спам или дубль", patient: "Карта пациента подтверждена" };
      showToast(done[action] + several);
    } else if (response.status === 409 && data.lead && data.lead.taken_at) {
      const since = data.lead.status === "in_progress"
        ? ` с ${formatMoment(data.lead.taken_at)}` : "";
      showToast(`${data.detail}${since}`, true);
    } else if (response.status === 401) {
      showBanner("Сессия истекла. ", "Войти снова", window.location.href);
    } else {
      showToast(typeof data.detail === "string" ? data.detail : "Не удалось выполнить действие.",
        true);
    }
    await refresh({ restart: true });
  }

  function openCloseDialog(lead, action) {
    dialogAction = { leadId: lead.lead_id, action };
    ui.dialogTitle.textContent = action === "spam"
      ? "Отметить как спам или дубль" : "Заявка обработана";
    const holder = lead.status === "in_progress" && lead.taken_by !== config.user
      ? ` Заявку ведёт ${lead.taken_by}.` : "";
    ui.dialogLead.textContent = `${lead.source_label}: ${describe(lead)}.${holder}`;
    ui.dialogComment.value = "";
    ui.dialog.showModal();
    ui.dialogComment.focus();
  }

  ui.dialog.addEventListener("close", () => {
    const chosen = dialogAction;
    dialogAction = null;
    if (chosen && ui.dialog.returnValue === "save") {
      const comment = ui.dialogComment.value.trim();
      act(chosen.leadId, chosen.action, comment ? { comment } : {});
    }
  });

  ui.rows.addEventListener("click", (event) => {
    const target = event.target.closest("button[data-action]");
    if (!target) return;
    const leadId = Number(target.dataset.leadId);
    const lead = leads.find((candidate) => candidate.lead_id === leadId);
    if (!lead) return;
    if (target.dataset.action === "take") {
      target.disabled = true;
      act(leadId, "take");
    } else if (target.dataset.action === "patient") {
      target.disabled = true;
      act(leadId, "patient", { patient_id: target.dataset.patientId || null });
    } else {
      openCloseDialog(lead, target.dataset.action);
    }
  });

  // ---- messages ---------------------------------------------------------------------------
  let toastTimer = null;

  function showToast(message, isError = false) {
    ui.toast.textContent = message;
    ui.toast.classList.toggle("is-error", isError);
    ui.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { ui.toast.hidden = true; }, 6000);
  }

  function showBanner(message, linkText, href) {
    ui.banner.replaceChildren(message);
    if (linkText) {
      const link = element("a", "", linkText);
      link.href = href;
      ui.banner.append(link);
    }
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
  }

  // ---- filters ----------------------------------------------------------------------------
  function filtersChanged() {
    const query = filterQuery();
    window.history.replaceState(null, "", query ? `?${query}` : window.location.pathname);
    refresh({ restart: true, baseline: true });
  }

  let searchTimer = null;
  ui.branch.addEventListener("change", filtersChanged);
  ui.source.addEventListener("change", filtersChanged);
  ui.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(filtersChanged, 300);
  });
  ui.filters.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    filtersChanged();
  });
  ui.filters.addEventListener("reset", () => setTimeout(filtersChanged));

  // ---- start ------------------------------------------------------------------------------
  ui.sound.checked = localStorage.getItem(STORAGE_SOUND) !== "off";
  ui.sound.addEventListener("change", () => {
    localStorage.setItem(STORAGE_SOUND, ui.sound.checked ? "on" : "off");
  });
  ui.enableNotifications.addEventListener("click", async () => {
    unlockAudio();
    await Notification.requestPermission();
    showNotificationControls();
  });
  // Browsers start sound only after the user has touched the page once.
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);
  document.addEventListener("visibilitychange", markSeen);
  showNotificationControls();

  // Timers of a background tab are slowed to once a minute; a worker's are not.
  try {
    const ticker = new Worker("static/ticker.js");
    ticker.onmessage = onRefreshTick;
    ticker.postMessage(config.refreshMs);
  } catch {
    setInterval(onRefreshTick, config.refreshMs);
  }
  setInterval(tick, 1000);
  refresh();
  connectPush();
})();
