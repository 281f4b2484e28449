// Painel: the domain's figures from /api/stats over the chosen period, drawn as inline SVG and
// plain bars (no chart library), plus the pending total now and the CSV export of the period.
(function () {
  'use strict';

  var cc = window.cc;
  var SVG = 'http://www.w3.org/2000/svg';
  var OUTCOMES = [
    ['answered', 'Atendidas', '#1e7a46'], ['busy', 'Ocupado', '#d49a2a'],
    ['no_answer', 'Não atendeu', '#2f74b5'], ['offline', 'Desconectado', '#8795a5'],
    ['dnd', 'Não perturbe', '#7a56c4'], ['rejected', 'Recusada', '#c2621a'],
    ['unavailable', 'Indisponível', '#b6c2cf'], ['caller_hung_up', 'Cliente desligou', '#8cc0d6'],
    ['failed', 'Falhou', '#b42318']
  ];
  var STATUS_COLOURS = {
    pending: '#d49a2a', notified: '#2f74b5', ready_to_call: '#1e7a46', in_progress: '#7a56c4',
    completed: '#2f6b4a', expired: '#8795a5', canceled: '#b6c2cf', failed: '#b42318', needs_review: '#c2621a'
  };
  var period = document.getElementById('period');
  var csv = document.getElementById('csv-link');
  var kpis = document.getElementById('kpis');
  var days = 7;

  function isoDate(ms) {
    var p = cc.parts(ms);
    return p.year + '-' + p.month + '-' + p.day;
  }

  function range() {
    return { from: isoDate(Date.now() - (days - 1) * 86400000), to: isoDate(Date.now()) };
  }

  function kpi(name, value) {
    kpis.querySelector('[data-kpi="' + name + '"]').textContent = value;
  }

  function percent(rate) {
    return rate === null || rate === undefined ? '—' : Math.round(rate * 100) + '%';
  }

  function svg(tag, attrs, text) {
    var el = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text !== undefined) el.textContent = String(text);
    return el;
  }

  function emptyChart(box, text) {
    box.replaceChildren(cc.el('div', 'chart-empty', text));
  }

  function niceMax(n) {
    if (n <= 4) return 4;
    var step = Math.pow(10, Math.floor(Math.log10(n)));
    var max = Math.ceil(n / step) * step;
    return max % 4 ? Math.ceil(max / 4 / (step / 2)) * 4 * (step / 2) : max;
  }

  function timeChart(series) {
    var box = document.getElementById('chart-time');
    var legend = document.getElementById('legend');
    var points = series.points;
    var totals = points.map(function (p) {
      return OUTCOMES.reduce(function (sum, o) { return sum + p.by_outcome[o[0]]; }, 0);
    });
    var top = Math.max.apply(null, totals.concat([0]));
    legend.replaceChildren();
    if (!top) { emptyChart(box, 'Nenhuma transferência no período.'); return; }
    var used = OUTCOMES.filter(function (o) { return points.some(function (p) { return p.by_outcome[o[0]]; }); });
    used.forEach(function (o) {
      var item = cc.el('span');
      var swatch = cc.el('i');
      swatch.style.background = o[2];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(o[1]));
      legend.appendChild(item);
    });
    // drawn at the box's own width, so the labels keep their size on a phone
    var W = Math.max(280, box.clientWidth || 820), H = W < 560 ? 200 : 250;
    var left = 34, bottom = 26, topPad = 8;
    var plotW = W - left - 6, plotH = H - bottom - topPad;
    var max = niceMax(top);
    var chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'xMidYMid meet' });
    for (var i = 0; i <= 4; i++) {
      var y = topPad + plotH - (plotH * i) / 4;
      chart.appendChild(svg('line', { x1: left, x2: W - 6, y1: y, y2: y, class: 'grid' }));
      chart.appendChild(svg('text', { x: left - 8, y: y + 4, 'text-anchor': 'end' }, Math.round((max * i) / 4)));
    }
    var slot = plotW / points.length;
    var barW = Math.max(2, Math.min(38, slot * 0.7));
    var every = Math.ceil(points.length / Math.max(3, Math.floor(W / 90)));
    points.forEach(function (p, k) {
      var x = left + k * slot + (slot - barW) / 2;
      var y = topPad + plotH;
      var at = cc.parts(Date.parse(p.at));
      var label = series.bucket === 'hour' ? at.hour + 'h' : at.day + '/' + at.month;
      var group = svg('g');
      group.appendChild(svg('title', {}, label + ': ' + totals[k] + ' transferências'));
      used.forEach(function (o) {
        var n = p.by_outcome[o[0]];
        if (!n) return;
        var h = (plotH * n) / max;
        y -= h;
        group.appendChild(svg('rect', { x: x, y: y, width: barW, height: Math.max(h - 1, 1), rx: 2, fill: o[2] }));
      });
      chart.appendChild(group);
      if (k % every === 0) {
        chart.appendChild(svg('text', { x: x + barW / 2, y: H - 8, 'text-anchor': 'middle' }, label));
      }
    });
    box.replaceChildren(chart);
  }

  function bars(box, items, emptyText) {
    if (!items.length) { emptyChart(box, emptyText); return; }
    var top = Math.max.apply(null, items.map(function (i) { return i.total; }));
    var list = cc.el('div', 'bars');
    items.forEach(function (item) {
      var row = cc.el('div', 'bar-row');
      row.appendChild(cc.el('span', 'label', item.label));
      var track = cc.el('span', 'bar-track');
      track.title = item.title || '';
      item.parts.forEach(function (part) {
        if (!part.n) return;
        var seg = cc.el('span');
        seg.style.width = (100 * part.n) / top + '%';
        seg.style.background = part.colour;
        track.appendChild(seg);
      });
      row.appendChild(track);
      row.appendChild(cc.el('span', 'value', item.value));
      list.appendChild(row);
    });
    box.replaceChildren(list);
  }

  var last = null;
  var resizing = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { if (last) timeChart(last.handoffs_over_time); }, 150);
  });

  function show(stats, pendingNow) {
    last = stats;
    var cb = stats.callbacks;
    kpi('open', String(pendingNow));
    kpi('open_sub', cb.open_waiting_seconds.longest
      ? 'o mais antigo espera ' + cc.duration(cb.open_waiting_seconds.longest) : 'ninguém esperando');
    var t = cb.time_to_callback_seconds;
    kpi('wait', cc.duration(t.mean));
    kpi('wait_sub', t.count ? 'até o retorno · mediana ' + cc.duration(t.median) : 'nenhum retorno concluído');
    kpi('completion', percent(cb.completion_rate));
    var closed = cb.by_status.completed + cb.by_status.expired + cb.by_status.canceled + cb.by_status.failed;
    kpi('completion_sub', closed ? cb.by_status.completed + ' de ' + closed + ' encerrados' : 'nenhum encerrado');
    kpi('answer', percent(stats.handoffs.answer_rate));
    kpi('answer_sub', stats.handoffs.total
      ? stats.handoffs.by_outcome.answered + ' de ' + stats.handoffs.total + ' transferências' : 'nenhuma transferência');
    kpis.setAttribute('aria-busy', 'false');

    timeChart(stats.handoffs_over_time);
    bars(document.getElementById('chart-destinations'), stats.destinations.slice(0, 6).map(function (d) {
      return {
        label: d.destination, total: d.handoffs,
        value: d.handoffs + ' · ' + percent(d.answer_rate),
        title: d.by_outcome.answered + ' atendidas de ' + d.handoffs,
        parts: OUTCOMES.map(function (o) { return { n: d.by_outcome[o[0]], colour: o[2] }; })
      };
    }), 'Nenhuma transferência no período.');
    bars(document.getElementById('chart-status'), Object.keys(cb.by_status).filter(function (s) {
      return cb.by_status[s];
    }).map(function (s) {
      return {
        label: cc.STATUS[s] || s, total: cb.by_status[s], value: String(cb.by_status[s]),
        parts: [{ n: cb.by_status[s], colour: STATUS_COLOURS[s] || '#8795a5' }]
      };
    }), 'Nenhum retorno no período.');
  }

  function load() {
    var r = range();
    csv.setAttribute('href', cc.url('/api/callbacks/report.csv', r));
    kpis.setAttribute('aria-busy', 'true');
    Promise.all([
      cc.api('/api/stats', { params: r }),
      cc.api('/api/callbacks', { params: { status: 'pending,notified,ready_to_call', limit: 1 } })
    ]).then(function (answers) {
      show(answers[0], answers[1].total);
    }).catch(function (err) {
      emptyChart(document.getElementById('chart-time'), err.reason || 'Não foi possível carregar o painel.');
    });
  }

  period.addEventListener('click', function (e) {
    var button = e.target.closest('button[data-days]');
    if (!button) return;
    days = Number(button.dataset.days);
    period.querySelectorAll('button').forEach(function (b) {
      b.classList.toggle('is-active', b === button);
      b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
    });
    load();
  });

  if (cc.domain) load(); else cc.me().then(load);
  setInterval(load, 60000);
})();
