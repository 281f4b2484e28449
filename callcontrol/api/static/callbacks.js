// Histórico e agenda: one tab of tickets with the page's filters, a page at a time; a row opens
// the ticket in a dialog (conversation by role, recording, history).
(function () {
  'use strict';

  var cc = window.cc;
  var table = document.getElementById('callbacks-table');
  var rows = document.getElementById('rows');
  var template = document.getElementById('row-template');
  var empty = document.getElementById('empty');
  var pager = document.getElementById('pager');
  var prev = document.getElementById('prev');
  var next = document.getElementById('next');
  var info = document.getElementById('page-info');
  var dialog = document.getElementById('ticket-dialog');
  var form = document.getElementById('filters');
  var LIMIT = 25;
  var offset = 0;
  var ROLES = { caller: 'Cliente', assistant: 'Secretária', user: 'Cliente', tool: 'Sistema', system: 'Sistema' };
  var LABELS = ['Pedido', 'Cliente', 'Motivo', 'Ramal', 'Agendado', 'Situação'];

  function filters() {
    var f = form.elements;
    return {
      status: f.status.value || table.dataset.statuses,
      scheduled: f.status.value ? '' : table.dataset.scheduled,
      extension: f.extension.value.trim(),
      from: f.from.value,
      to: f.to.value
    };
  }

  function loading() {
    rows.replaceChildren();
    var tr = cc.el('tr', 'loading-row');
    var td = cc.el('td');
    td.colSpan = 6;
    td.appendChild(cc.el('span', 'spinner'));
    td.appendChild(document.createTextNode(' Carregando…'));
    tr.appendChild(td);
    rows.appendChild(tr);
  }

  function row(t) {
    var tr = template.content.firstElementChild.cloneNode(true);
    tr.dataset.id = t.id;
    cc.fill(tr, {
      created: cc.dateTime(t.created_at),
      caller_name: t.caller_name || 'Sem nome',
      phone: cc.phone(t.phone_number),
      reason: t.reason || t.message || '—',
      extension: t.extension || '—',
      scheduled: cc.when(t.scheduled_at, '—'),
      status: cc.STATUS[t.status] || t.status
    });
    tr.querySelector('[data-slot="status"]').className = 'pill pill-' + t.status;
    tr.querySelectorAll('td').forEach(function (td, i) { td.dataset.label = LABELS[i]; });
    tr.querySelector('[data-slot="scheduled"]').classList.toggle('is-none', !t.scheduled_at);
    return tr;
  }

  function load() {
    loading();
    var query = Object.assign(filters(), { limit: LIMIT, offset: offset });
    table.setAttribute('aria-busy', 'true');
    cc.api('/api/callbacks', { params: query }).then(function (page) {
      rows.replaceChildren.apply(rows, page.items.map(row));
      empty.hidden = page.total > 0;
      table.parentElement.hidden = page.total === 0;
      pager.hidden = page.total <= LIMIT;
      prev.disabled = offset === 0;
      next.disabled = offset + page.items.length >= page.total;
      info.textContent = page.total
        ? (offset + 1) + '–' + (offset + page.items.length) + ' de ' + page.total : '';
    }).catch(function (err) {
      rows.replaceChildren();
      var tr = cc.el('tr', 'loading-row');
      var td = cc.el('td', '', err.reason || 'Não foi possível carregar.');
      td.colSpan = 6;
      tr.appendChild(td);
      rows.appendChild(tr);
    }).then(function () { table.setAttribute('aria-busy', 'false'); });
  }

  prev.addEventListener('click', function () { offset = Math.max(0, offset - LIMIT); load(); });
  next.addEventListener('click', function () { offset += LIMIT; load(); });

  // --- the ticket's dialog -------------------------------------------------------------------

  function fact(label, value) {
    var box = cc.el('div');
    box.appendChild(cc.el('dt', '', label));
    box.appendChild(cc.el('dd', '', value === null || value === undefined || value === '' ? '—' : value));
    return box;
  }

  function open(id) {
    cc.fill(dialog, { title: 'Carregando…', subtitle: '', summary: '' });
    ['facts', 'recording', 'transcript', 'history'].forEach(function (slot) {
      dialog.querySelector('[data-slot="' + slot + '"]').replaceChildren();
    });
    dialog.showModal();
    cc.api('/api/callbacks/' + encodeURIComponent(id)).then(function (t) {
      cc.fill(dialog, {
        title: t.caller_name || cc.phone(t.phone_number),
        subtitle: (t.caller_name ? cc.phone(t.phone_number) + ' · ' : '') +
          (cc.STATUS[t.status] || t.status) + ' · pedido em ' + cc.dateTime(t.created_at),
        summary: t.summary || t.reason || t.message || 'Sem resumo.'
      });
      var facts = dialog.querySelector('[data-slot="facts"]');
      var open = ['completed', 'expired', 'canceled', 'failed'].indexOf(t.status) < 0;
      var whatsapp = t.whatsapp_response ||
        (t.whatsapp_sent_at ? 'enviado ' + cc.dateTime(t.whatsapp_sent_at) : '');
      // what is known: an empty field is left out rather than shown as a dash
      facts.replaceChildren.apply(facts, [
        ['Motivo', t.reason || t.message],
        ['Para', t.intended_for || t.destination_name],
        ['Ramal', t.extension],
        ['Agendado', open ? cc.when(t.scheduled_at) : (t.scheduled_at && cc.when(t.scheduled_at))],
        ['Horário pedido', t.preferred_time],
        ['Tentativas', t.attempts + ' de ' + t.max_attempts],
        ['WhatsApp', whatsapp],
        [open ? 'Expira' : 'Concluído', open ? cc.dateTime(t.expires_at) : t.completed_at && cc.dateTime(t.completed_at)]
      ].filter(function (f) { return f[1]; }).map(function (f) { return fact(f[0], f[1]); }));
      var recording = dialog.querySelector('[data-slot="recording"]');
      if (t.recording && t.recording.url) {
        // served by this host from CALLCONTROL_RECORDINGS_DIR, with the session's cookie
        var own = cc.el('audio');
        own.controls = true;
        own.preload = 'none';
        own.src = t.recording.url;
        recording.appendChild(own);
      } else if (t.recording && t.recording.path) {
        var path = t.recording.path;
        if (/^(https:\/\/|\/)/.test(path) && !/^\/\//.test(path) && /\.(wav|mp3|ogg|opus|m4a|webm)(\?|$)/i.test(path) && !/^\/(var|usr|tmp|opt|srv|home)\//.test(path)) {
          var player = cc.el('audio');
          player.controls = true;
          player.preload = 'none';
          player.src = path;
          recording.appendChild(player);
        } else {
          recording.appendChild(cc.el('code', 'muted', path));
        }
      } else {
        recording.appendChild(cc.el('p', 'muted', 'Sem gravação para este retorno.'));
      }
      var transcript = dialog.querySelector('[data-slot="transcript"]');
      if (!t.transcript.length) transcript.appendChild(cc.el('li', 'role-tool', 'Sem conversa registrada.'));
      t.transcript.forEach(function (line) {
        var li = cc.el('li', 'role-' + (ROLES[line.role] ? line.role : 'tool'));
        li.appendChild(cc.el('span', 'who', ROLES[line.role] || line.role));
        li.appendChild(document.createTextNode(line.text));
        transcript.appendChild(li);
      });
      var history = dialog.querySelector('[data-slot="history"]');
      if (!t.history.length) history.appendChild(cc.el('li', '', 'Criado ' + cc.dateTime(t.created_at)));
      t.history.forEach(function (h) {
        var li = cc.el('li');
        var what = (h.from_status ? (cc.STATUS[h.from_status] || h.from_status) + ' → ' : '') +
          (cc.STATUS[h.to_status] || h.to_status);
        li.appendChild(cc.el('div', 'strong', what));
        li.appendChild(cc.el('div', 'when', cc.dateTime(h.changed_at) + ' · por ' + h.changed_by +
          (h.reason ? ' · ' + h.reason : '')));
        history.appendChild(li);
      });
    }).catch(function (err) {
      cc.fill(dialog, { title: 'Não foi possível abrir', subtitle: err.reason || '' });
    });
  }

  rows.addEventListener('click', function (e) {
    var tr = e.target.closest('tr[data-id]');
    if (tr) open(tr.dataset.id);
  });
  rows.addEventListener('keydown', function (e) {
    var tr = e.target.closest('tr[data-id]');
    if (tr && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); open(tr.dataset.id); }
  });
  dialog.addEventListener('click', function (e) { if (e.target === dialog) dialog.close(); });

  if (cc.domain) {
    load();
  } else {
    cc.me().then(load);
  }
})();
