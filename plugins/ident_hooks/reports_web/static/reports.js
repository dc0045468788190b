// The reports page: reads the weekly series from api/weekly and draws three charts as inline
// SVG. No chart library: bars, axes and labels are plain SVG elements made here.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 960; // every chart's viewBox width; the SVG scales to the card's width
const CHANNEL_COLOURS = {
  aggregator: "#0b5cad",
  paid: "#e8710a",
  social: "#7b3fb5",
  email: "#c2185b",
  organic: "#188038",
  referral: "#00838f",
  other: "#8c6d1f",
  direct: "#5f6368",
};
const SPARE_COLOURS = ["#a142f4", "#12b5cb", "#f9ab00", "#d93025"];
const ANSWERED_COLOUR = "#188038";
const CONVERSION_COLOUR = "#0b5cad";

const $ = (id) => document.getElementById(id);

function svgElement(name, attributes = {}, text = null) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== null) element.textContent = text;
  return element;
}

function tooltip(element, text) {
  element.appendChild(svgElement("title", {}, text));
  return element;
}

function newChart(containerId, height, label) {
  const svg = svgElement("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: "img",
    "aria-label": label,
    preserveAspectRatio: "xMidYMid meet",
  });
  $(containerId).replaceChildren(svg);
  return svg;
}

function showEmpty(containerId, message) {
  const paragraph = document.createElement("p");
  paragraph.className = "empty";
  paragraph.textContent = message;
  $(containerId).replaceChildren(paragraph);
}

function plural(n, one, few, many) {
  const tens = n % 100;
  const units = n % 10;
  if (tens >= 11 && tens <= 14) return many;
  if (units === 1) return one;
  if (units >= 2 && units <= 4) return few;
  return many;
}

const leadsWord = (n) => `${n} ${plural(n, "заявка", "заявки", "заявок")}`;

function percent(share) {
  return `${(share * 100).toLocaleString("ru-RU", { maximumFractionDigits: 1 })} %`;
}

function parseDay(iso) {
  const [year, month, day] = iso.split("-").map(Number);
  return new Date(year, month - 1, day);
}

function shortDate(date) {
  return date.toLocaleDateString("ru-RU", { day: "2-digit", month: "2-digit" });
}

function weekTitle(iso) {
  const monday = parseDay(iso);
  const sunday = new Date(monday.getFullYear(), monday.getMonth(), monday.getDate() + 6);
  return `Неделя ${shortDate(monday)}–${shortDate(sunday)}`;
}

// A round upper bound for the y axis and its step: 0, step, 2·step … ≥ max.
function niceScale(max, ticks = 5) {
  if (max <= 0) return { top: ticks - 1, step: 1 };
  const rough = max / (ticks - 1);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const wholeStep = Math.max(1, step);
  return { top: Math.ceil(max / wholeStep) * wholeStep, step: wholeStep };
}

// The frame shared by the two weekly charts: grid, y labels, week labels on the x axis.
function weeklyFrame(svg, weeks, height, top, step, formatTick) {
  const plot = { left: 56, right: WIDTH - 16, top: 16, bottom: height - 44 };
  const y = (value) => plot.bottom - (value / top) * (plot.bottom - plot.top);
  for (let value = 0; value <= top + 1e-9; value += step) {
    svg.appendChild(svgElement("line", {
      class: "grid", x1: plot.left, x2: plot.right, y1: y(value), y2: y(value),
    }));
    svg.appendChild(svgElement("text", {
      x: plot.left - 8, y: y(value) + 4, "text-anchor": "end",
    }, formatTick(value)));
  }
  svg.appendChild(svgElement("line", {
    class: "axis", x1: plot.left, x2: plot.right, y1: plot.bottom, y2: plot.bottom,
  }));
  const band = (plot.right - plot.left) / weeks.length;
  const every = Math.ceil(weeks.length / 13);
  weeks.forEach((week, index) => {
    if ((weeks.length - 1 - index) % every !== 0) return; // keep the current week labelled
    const text = svgElement("text", {
      x: plot.left + band * (index + 0.5), y: plot.bottom + 18, "text-anchor": "middle",
    }, shortDate(parseDay(week)));
    svg.appendChild(tooltip(text, weekTitle(week)));
  });
  svg.appendChild(svgElement("text", {
    x: (plot.left + plot.right) / 2, y: height - 6, "text-anchor": "middle",
  }, "Неделя (дата понедельника)"));
  return { plot, y, band };
}

function drawChannels(data) {
  const weeks = data.weeks;
  const channels = Object.keys(data.leads_by_channel);
  const legend = $("legend-channels");
  legend.replaceChildren();
  if (channels.length === 0) {
    showEmpty("chart-channels", "За эти недели заявок не было.");
    return;
  }
  const colour = {};
  channels.forEach((channel, index) => {
    colour[channel] = CHANNEL_COLOURS[channel] || SPARE_COLOURS[index % SPARE_COLOURS.length];
  });
  const totals = weeks.map((_, i) => channels.reduce((sum, c) => sum + data.leads_by_channel[c][i], 0));
  const { top, step } = niceScale(Math.max(...totals));
  const height = 320;
  const svg = newChart("chart-channels", height, "Заявки по каналам, по неделям");
  const { plot, y, band } = weeklyFrame(svg, weeks, height, top, step, (v) => String(v));
  svg.appendChild(tooltip(svgElement("text", {
    x: 14, y: (plot.top + plot.bottom) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(plot.top + plot.bottom) / 2})`,
  }, "Заявок"), "Заявок за неделю, без спама"));
  const barWidth = Math.max(2, band * 0.7);
  weeks.forEach((week, index) => {
    let stacked = 0;
    const x = plot.left + band * index + (band - barWidth) / 2;
    for (const channel of channels) {
      const leads = data.leads_by_channel[channel][index];
      if (!leads) continue;
      const rect = svgElement("rect", {
        class: "bar", "data-channel": channel, x, width: barWidth,
        y: y(stacked + leads), height: y(stacked) - y(stacked + leads), fill: colour[channel],
      });
      svg.appendChild(tooltip(rect, `${weekTitle(week)}: ${data.channels[channel].label} — ${leadsWord(leads)}`));
      stacked += leads;
    }
    if (totals[index] && weeks.length <= 26) {
      svg.appendChild(svgElement("text", {
        class: "value", x: x + barWidth / 2, y: y(totals[index]) - 4, "text-anchor": "middle",
      }, String(totals[index])));
    }
  });
  for (const channel of channels) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = colour[channel];
    const sum = data.leads_by_channel[channel].reduce((a, b) => a + b, 0);
    item.append(swatch, `${data.channels[channel].label} (${sum})`);
    if (data.channels[channel].description) item.title = data.channels[channel].description;
    legend.appendChild(item);
  }
}

function drawAnswered(data) {
  const shares = data.answered_in_5_min_share;
  if (shares.every((share) => share === null)) {
    showEmpty("chart-answered", "За эти недели заявок не было.");
    return;
  }
  const height = 280;
  const svg = newChart("chart-answered", height, "Доля заявок, взятых в работу за 5 минут, по неделям");
  const { plot, y, band } = weeklyFrame(svg, data.weeks, height, 100, 25, (v) => `${v} %`);
  const barWidth = Math.max(2, band * 0.6);
  data.weeks.forEach((week, index) => {
    const share = shares[index];
    const x = plot.left + band * index + (band - barWidth) / 2;
    if (share === null) {
      svg.appendChild(tooltip(svgElement("text", {
        x: x + barWidth / 2, y: plot.bottom - 6, "text-anchor": "middle",
      }, "—"), `${weekTitle(week)}: заявок не было`));
      return;
    }
    const rect = svgElement("rect", {
      class: "bar", x, width: barWidth, y: y(share * 100),
      height: Math.max(1, plot.bottom - y(share * 100)), fill: ANSWERED_COLOUR,
    });
    svg.appendChild(tooltip(rect, `${weekTitle(week)}: ${percent(share)} заявок взяты за 5 минут`));
    if (data.weeks.length <= 26) {
      svg.appendChild(svgElement("text", {
        class: "value", x: x + barWidth / 2, y: y(share * 100) - 4, "text-anchor": "middle",
      }, percent(share)));
    }
  });
}

function truncate(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function drawCampaigns(data) {
  const campaigns = data.conversion_by_campaign;
  if (campaigns.length === 0) {
    showEmpty("chart-campaigns", "За эти недели не было заявок с меткой utm_campaign.");
    return;
  }
  const row = 40;
  const plot = { left: 280, right: WIDTH - 150, top: 28 };
  const height = plot.top + row * campaigns.length + 8;
  const svg = newChart("chart-campaigns", height, "Конверсия в запись по рекламным кампаниям");
  const x = (share) => plot.left + share * (plot.right - plot.left);
  for (const value of [0, 0.25, 0.5, 0.75, 1]) {
    svg.appendChild(svgElement("line", {
      class: "grid", x1: x(value), x2: x(value), y1: plot.top - 6, y2: height - 8,
    }));
    svg.appendChild(svgElement("text", { x: x(value), y: 14, "text-anchor": "middle" }, `${value * 100} %`));
  }
  campaigns.forEach((campaign, index) => {
    const top = plot.top + row * index;
    const via = [campaign.utm_source, campaign.utm_medium].filter(Boolean).join(" / ") || "без source и medium";
    const name = svgElement("text", { class: "value", x: plot.left - 10, y: top + 16, "text-anchor": "end" },
      truncate(campaign.utm_campaign, 34));
    svg.appendChild(tooltip(name, `${campaign.utm_campaign} (${via})`));
    svg.appendChild(svgElement("text", { x: plot.left - 10, y: top + 31, "text-anchor": "end" }, truncate(via, 40)));
    const share = campaign.conversion_rate || 0;
    const rect = svgElement("rect", {
      class: "bar", x: plot.left, y: top + 6, height: row - 14,
      width: Math.max(1, x(share) - plot.left), fill: CONVERSION_COLOUR,
    });
    svg.appendChild(tooltip(rect,
      `${campaign.utm_campaign}: ${campaign.converted_leads} из ${leadsWord(campaign.leads)} стали записью (${percent(share)})`));
    svg.appendChild(svgElement("text", { class: "value", x: x(share) + 8, y: top + 24 },
      `${percent(share)} · ${campaign.converted_leads} из ${campaign.leads}`));
  });
}

function showStatus(data) {
  const today = parseDay(data.today).toLocaleDateString("ru-RU");
  let built = "отчёты ещё не построены";
  if (data.built_at) {
    const when = new Date(data.built_at).toLocaleString("ru-RU", {
      day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
    });
    built = `отчёты обновлены ${when}`;
  }
  $("status").textContent = `Данные на ${today} · ${built}`;
}

async function load() {
  const weeks = $("weeks").value;
  const banner = $("banner");
  try {
    const response = await fetch(`api/weekly?weeks=${encodeURIComponent(weeks)}`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (response.status === 401 || response.status === 403) {
      window.location.reload(); // the login expired: the page itself leads to the login
      return;
    }
    if (!response.ok) throw new Error(`сервер ответил ${response.status}`);
    const data = await response.json();
    banner.hidden = true;
    showStatus(data);
    drawChannels(data);
    drawAnswered(data);
    drawCampaigns(data);
    document.body.dataset.loadedWeeks = String(data.weeks.length);
  } catch (error) {
    banner.textContent = `Не удалось загрузить отчёт: ${error.message}`;
    banner.hidden = false;
  }
}

$("weeks").addEventListener("change", () => {
  const url = new URL(window.location.href);
  url.searchParams.set("weeks", $("weeks").value);
  window.history.replaceState(null, "", url);
  load();
});
load();
