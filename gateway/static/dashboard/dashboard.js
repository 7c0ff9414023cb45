// The dashboard page (issue 14): reads only through POST /graphql with the caller's token,
// which lives in sessionStorage (this tab only). No other host is contacted.
"use strict";

const TOKEN_KEY = "medgw.token";
const CELL = `key label suppressed persons claims totalCost outOfScopeCost outOfPocket
  basicInsurance criticalIllness inclusiveCommercial assistance secondaryAssistance
  outOfPocketShare outOfScopeShare averageOutOfPocket`;
const PAYER = "payer label suppressed persons amount share";
const QUERY = `query Dashboard($year: Int!, $regionPrefix: String) {
  dashboard(year: $year, regionPrefix: $regionPrefix) {
    regionPrefix year k
    total { ${CELL} }
    assisted { ${PAYER} }
    byMonth { ${CELL} } byRegion { ${CELL} } byCategory { ${CELL} }
    byVisitType { ${CELL} } byHospitalLevel { ${CELL} }
    byPayer { ${PAYER} }
    outOfPocketBands { lower upper suppressed persons outOfPocket }
    alerts { key label suppressed persons }
    subsidies { category label suppressed persons assistanceFund finance individual }
  }
}`;
// Fund balances are a separate query: only finance and medical insurance are granted
// Dashboard.fundBalances, and a request naming a field not granted is refused as a whole.
const FUND_QUERY = `query FundBalances($year: Int!, $regionPrefix: String) {
  dashboard(year: $year, regionPrefix: $regionPrefix) {
    fundBalances { fund label opening debits credits closing settlements subsidies }
  }
}`;

const $ = (id) => document.getElementById(id);
let k = 5;
const charts = {};

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    return null;
  }
}

function money(v) {
  return Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
function count(v) {
  return Number(v).toLocaleString("en-US");
}
function percent(v) {
  return v === null || v === undefined ? "—" : (Number(v) * 100).toFixed(2) + "%";
}

function td(value, format, suppressed, field) {
  const cell = document.createElement("td");
  cell.dataset.field = field;
  if (suppressed) {
    cell.className = "suppressed";
    cell.textContent = `已抑制 (<${k})`;
  } else {
    cell.className = "num";
    cell.textContent = value === null || value === undefined ? "—" : format(value);
  }
  return cell;
}

// columns: [field, header, format]
function table(id, columns, rows, keyOf, labelOf, labelHeader) {
  const t = $(id);
  t.replaceChildren();
  const head = document.createElement("tr");
  for (const h of [labelHeader, ...columns.map((c) => c[1])]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.appendChild(th);
  }
  t.appendChild(head);
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.dataset.key = keyOf(row);
    const name = document.createElement("td");
    name.dataset.field = "label";
    name.textContent = labelOf(row);
    tr.appendChild(name);
    for (const [field, , format] of columns) {
      tr.appendChild(td(row[field], format, row.suppressed, field));
    }
    t.appendChild(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const empty = document.createElement("td");
    empty.colSpan = columns.length + 1;
    empty.textContent = "无数据";
    tr.appendChild(empty);
    t.appendChild(tr);
  }
}

const CELL_COLUMNS = [
  ["persons", "人数", count],
  ["claims", "结算人次", count],
  ["totalCost", "总费用 (元)", money],
  ["outOfPocket", "个人自付 (元)", money],
  ["assistance", "医疗救助 (元)", money],
  ["outOfPocketShare", "个人负担比例", percent],
  ["outOfScopeShare", "目录外费用占比", percent],
  ["averageOutOfPocket", "人均自付 (元)", money],
];

function card(id, name, value, suppressed) {
  const div = document.createElement("div");
  div.className = "card";
  div.id = id;
  div.innerHTML = '<div class="name"></div><div class="value"></div>';
  div.querySelector(".name").textContent = name;
  div.querySelector(".value").textContent = suppressed ? `已抑制 (<${k})` : value;
  if (suppressed) div.querySelector(".value").classList.add("suppressed");
  return div;
}

function chart(id, option) {
  if (!charts[id]) charts[id] = echarts.init($(id), null, { renderer: "canvas" });
  charts[id].setOption(option, true);
}

function render(d) {
  k = d.k;
  $("k").textContent = String(k);
  const t = d.total;
  const alerts = Object.fromEntries(d.alerts.map((a) => [a.key, a]));
  const alertCard = (key) => {
    const a = alerts[key];
    return a ? [count(a.persons ?? 0), a.suppressed] : ["0", false];
  };
  $("kpis").replaceChildren(
    card("kpi-persons", "就医人数", t.suppressed ? "" : count(t.persons), t.suppressed),
    card("kpi-claims", "结算人次", t.suppressed ? "" : count(t.claims), t.suppressed),
    card("kpi-total-cost", "总费用 (元)", t.suppressed ? "" : money(t.totalCost), t.suppressed),
    card("kpi-assisted", "获救助人数", count(d.assisted.persons ?? 0), d.assisted.suppressed),
    card("kpi-out-of-pocket-share", "综合保障后个人负担比例", percent(t.outOfPocketShare), t.suppressed),
    card("kpi-out-of-scope-share", "目录外费用占比", percent(t.outOfScopeShare), t.suppressed),
    card("kpi-average-out-of-pocket", "人均个人自付 (元)", t.suppressed ? "" : money(t.averageOutOfPocket ?? 0), t.suppressed),
    card("kpi-alerted", "高额费用预警人数", ...alertCard("ALL")),
    card("kpi-recognised", "预警后认定人数", ...alertCard("RECOGNISED")),
  );
  const label = (r) => r.label;
  table("by-category", CELL_COLUMNS, d.byCategory, (r) => r.key, label, "救助身份");
  table("by-region", CELL_COLUMNS, d.byRegion, (r) => r.key, label, "地区代码");
  table("by-month", CELL_COLUMNS, d.byMonth, (r) => r.key, (r) => `${d.year}年${Number(r.key)}月`, "月份");
  table("by-visit-type", CELL_COLUMNS, d.byVisitType, (r) => r.key, label, "就诊类型");
  table("by-hospital-level", CELL_COLUMNS, d.byHospitalLevel, (r) => r.key, label, "医院等级");
  table(
    "by-payer",
    [["persons", "人数", count], ["amount", "支付 (元)", money], ["share", "占总费用", percent]],
    [...d.byPayer, d.assisted],
    (r) => r.payer,
    label,
    "支付方",
  );
  const bandName = (b) => (b.upper === null ? `${count(b.lower)} 元以上` : `${count(b.lower)}–${count(b.upper)} 元`);
  table(
    "bands",
    [["persons", "人数", count], ["outOfPocket", "个人自付 (元)", money]],
    d.outOfPocketBands,
    (b) => String(Number(b.lower)),
    bandName,
    "年度个人自付",
  );
  table("alerts", [["persons", "人数", count]], d.alerts, (a) => a.key, label, "状态");
  table(
    "subsidies",
    [
      ["persons", "人数", count],
      ["assistanceFund", "医疗救助基金 (元)", money],
      ["finance", "财政 (元)", money],
      ["individual", "个人缴费 (元)", money],
    ],
    d.subsidies,
    (s) => s.category,
    label,
    "资助类别",
  );

  const shown = (rows) => rows.filter((r) => !r.suppressed);
  const months = shown(d.byMonth);
  chart("chart-month", {
    tooltip: { trigger: "axis" },
    legend: { data: ["总费用", "个人负担比例"] },
    xAxis: { type: "category", data: months.map((m) => `${Number(m.key)}月`) },
    yAxis: [{ type: "value", name: "元" }, { type: "value", name: "%", max: 100 }],
    series: [
      { name: "总费用", type: "bar", data: months.map((m) => Number(m.totalCost)) },
      { name: "个人负担比例", type: "line", yAxisIndex: 1, data: months.map((m) => Number(m.outOfPocketShare ?? 0) * 100) },
    ],
    animation: false,
  });
  const payers = shown(d.byPayer);
  const paidOut = t.suppressed ? [] : [{ name: "个人自付", value: Number(t.outOfPocket) }];
  chart("chart-payers", {
    tooltip: { trigger: "item", formatter: "{b}: {c} 元 ({d}%)" },
    series: [{ type: "pie", radius: ["35%", "65%"], data: [...payers.map((p) => ({ name: p.label, value: Number(p.amount) })), ...paidOut] }],
    animation: false,
  });
  const categories = shown(d.byCategory);
  chart("chart-category", {
    tooltip: { trigger: "axis" },
    grid: { left: 110 },
    xAxis: { type: "value" },
    yAxis: { type: "category", data: categories.map((c) => c.label) },
    series: [{ name: "人数", type: "bar", data: categories.map((c) => c.persons) }],
    animation: false,
  });
  const bands = d.outOfPocketBands;
  chart("chart-bands", {
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: bands.map(bandName) },
    yAxis: { type: "value", name: "人数" },
    series: [{ type: "bar", data: bands.map((b) => (b.suppressed ? 0 : b.persons)) }],
    animation: false,
  });
}

function renderFunds(year, funds) {
  $("fund-year").textContent = String(year);
  $("fund-balances-refused").hidden = true;
  $("fund-balances").hidden = false;
  table(
    "funds",
    [
      ["opening", "期初余额 (元)", money],
      ["debits", "借方发生额 (元)", money],
      ["credits", "贷方发生额 (元)", money],
      ["closing", "期末余额 (元)", money],
      ["settlements", "其中: 结算 (元)", money],
      ["subsidies", "其中: 资助参保 (元)", money],
    ],
    funds,
    (f) => f.fund,
    (f) => f.label,
    "基金",
  );
  const assistance = funds.find((f) => f.fund === "ASSISTANCE_FUND");
  const use = assistance
    ? [
        { name: "救助支出 (结算净额)", value: Number(assistance.settlements) },
        { name: "资助参保", value: Number(assistance.subsidies) },
      ]
    : [];
  chart("chart-fund-use", {
    tooltip: { trigger: "item", formatter: "{b}: {c} 元 ({d}%)" },
    series: [{ type: "pie", radius: ["35%", "65%"], data: use.filter((u) => u.value > 0) }],
    animation: false,
  });
}

function hideFunds(text) {
  $("fund-balances").hidden = true;
  $("fund-balances-refused").hidden = false;
  $("fund-balances-refused").textContent = text;
}

// POST /graphql with the token: [the HTTP status, the response body].
async function graphql(token, query, operationName, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables, operationName }),
  });
  return [response.status, await response.json()];
}
const codeOf = (error, status) => (error.extensions && error.extensions.code) || status;

async function loadFunds(token, year, regionPrefix) {
  const [status, body] = await graphql(token, FUND_QUERY, "FundBalances", { year, regionPrefix });
  if (body.errors && body.errors.length) {
    const forbidden = body.errors.some((e) => codeOf(e, status) === "FORBIDDEN");
    const codes = body.errors.map((e) => codeOf(e, status));
    hideFunds(
      forbidden
        ? "基金收支与余额: 本部门无权查看 (FORBIDDEN: 访问策略未授予 Dashboard.fundBalances)。"
        : `基金收支与余额暂无法读取 (${codes.join(", ")})。`,
    );
  } else {
    renderFunds(year, body.data.dashboard.fundBalances);
  }
}

function showError(text) {
  $("board").hidden = true;
  $("error").hidden = false;
  $("error").textContent = text;
}

async function load() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showError("请先输入令牌。");
    return;
  }
  const regionPrefix = $("region").value || null;
  const year = Number($("year").value);
  $("status").textContent = "加载中…";
  document.body.dataset.state = "loading";
  try {
    const [status, body] = await graphql(token, QUERY, "Dashboard", { year, regionPrefix });
    if (body.errors && body.errors.length) {
      const lines = body.errors.map((e) => `${codeOf(e, status)}: ${e.message}`);
      const forbidden = body.errors.some((e) => codeOf(e, status) === "FORBIDDEN");
      showError((forbidden ? "本部门无权查看统计数据 (拒绝访问)。\n" : "请求失败。\n") + lines.join("\n"));
    } else {
      $("error").hidden = true;
      $("board").hidden = false;
      render(body.data.dashboard);
      addRegions(body.data.dashboard.byRegion);
      await loadFunds(token, year, regionPrefix);
    }
  } catch (e) {
    showError(`网关无法访问: ${e}`);
  } finally {
    $("status").textContent = "";
    document.body.dataset.state = "ready";
  }
}

function addRegions(cells) {
  const select = $("region");
  const have = new Set([...select.options].map((o) => o.value));
  for (const c of cells) {
    if (!have.has(c.key)) select.add(new Option(`└ ${c.key}`, c.key));
  }
}

function setUp() {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const who = token ? claims(token) : null;
  $("who").textContent = who ? `${who.department} · ${who.org} · ${who.regions.join(", ")}` : "未输入令牌";
  const region = $("region");
  region.replaceChildren();
  for (const prefix of (who && who.regions) || []) {
    region.add(new Option(prefix === "" ? "全部地区" : prefix, prefix));
  }
  const year = $("year");
  if (year.options.length === 0) {
    // The current year in China (UTC+8), and the five before it.
    const now = new Date(Date.now() + 8 * 3600 * 1000).getUTCFullYear();
    for (let y = now; y > now - 6; y -= 1) year.add(new Option(String(y), String(y)));
    const asked = new URLSearchParams(window.location.search).get("year");
    if (asked) {
      if (![...year.options].some((o) => o.value === asked)) year.add(new Option(asked, asked));
      year.value = asked;
    }
  }
  if (token) load();
}

$("token-bar").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  setUp();
});
$("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  $("board").hidden = true;
  setUp();
});
$("region").addEventListener("change", load);
$("year").addEventListener("change", load);
window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
setUp();
