// The agent console: the cards of the open callbacks, kept current from the API (live events,
// else polling), with Ligar agora / Adiar 5 min / Cancelar. The cards' markup is the server's
// (<template id="card-template">); this file only fills it with text.
(function () {
  'use strict';

  var cc = window.cc;
  var cards = document.getElementById('cards');
  var template = document.getElementById('card-template');
  var empty = document.getElementById('empty');
  var badge = document.getElementById('pending-badge');
  var cancelDialog = document.getElementById('cancel-dialog');
  var SHOWN = ['pending', 'notified', 'ready_to_call', 'in_progress'];
  var WAITING = ['pending', 'notified', 'ready_to_call'];
  var own = (document.body.dataset.extensions || '').split(' ').filter(Boolean);
  var tickets = {}; // id -> the ticket as the API last gave it
  var seen = {};    // ids shown since the page opened (an arrival is one not seen before)
  var busyUntil = {}; // id -> when "Ligar agora" may be tried again (USER_BUSY)
  var baseTitle = document.title.replace(/^\(\d+\)\s*/, '');

  cards.querySelectorAll('.card').forEach(function (node) { seen[node.dataset.id] = true; });

  function mine(t) {
    if (t.kind && t.kind !== 'callback') return false;
    return cc.role !== 'agent' || !own.length || own.indexOf(t.extension) >= 0;
  }

  // the call under way first (the agent is on it), then the ones ready to call, then by when
  // each is due: the server's order (pages.open_tickets)
  function urgency(a, b) {
    var calling = (b.status === 'in_progress') - (a.status === 'in_progress');
    if (calling) return calling;
    var ready = (b.status === 'ready_to_call') - (a.status === 'ready_to_call');
    if (ready) return ready;
    var due = Date.parse(a.scheduled_at || a.created_at) - Date.parse(b.scheduled_at || b.created_at);
    return due || (a.id < b.id ? -1 : 1);
  }

  // waiting for its time (scheduled, or put off with Adiar): pages.is_later decides the same
  function isLater(t) {
    return (t.status === 'pending' || t.status === 'notified') && !!t.scheduled_at &&
      Date.parse(t.scheduled_at) > Date.now() + 30000;
  }

  function nodeOf(id) {
    return cards.querySelector('.card[data-id="' + CSS.escape(id) + '"]');
  }

  function fillCard(node, t) {
    node.dataset.id = t.id;
    node.dataset.status = t.status;
    node.dataset.createdAt = t.created_at || '';
    node.dataset.scheduledAt = t.scheduled_at || '';
    node.className = node.className.replace(/\bstatus-\S+/g, '').trim() + ' status-' + t.status;
    cc.fill(node, {
      status: cc.STATUS[t.status] || t.status,
      waited: cc.ago(t.created_at),
      phone: cc.phone(t.phone_number),
      caller_name: t.caller_name || 'Sem nome',
      reason: t.reason || t.message || 'Sem motivo informado',
      scheduled: cc.when(t.scheduled_at),
      extension: t.extension || '—',
      intended_for: t.intended_for || t.destination_name || '—'
    });
    cc.fill(node, { whatsapp: t.whatsapp_response ? '“' + t.whatsapp_response + '”' : '' });
    node.querySelector('[data-slot="whatsapp_box"]').hidden = !t.whatsapp_response;
    var later = isLater(t);
    node.classList.toggle('is-later', later);
    var pill = node.querySelector('[data-slot="status"]');
    pill.className = 'pill pill-' + (later ? 'later' : t.status);
    if (later) pill.textContent = 'Agendado';
    node.querySelector('[data-slot="caller_name"]').classList.toggle('missing', !t.caller_name);
    node.querySelector('[data-slot="reason"]').classList.toggle('missing', !(t.reason || t.message));
    node.querySelector('.phone').setAttribute('href', 'tel:' + (t.phone_number || ''));
    node.querySelector('[data-slot="waited"]').title = 'pedido em ' + cc.dateTime(t.created_at);
    setButtons(node, t);
  }

  function setButtons(node, t) {
    var calling = t.status === 'in_progress';
    var waitBusy = (busyUntil[t.id] || 0) > Date.now();
    node.querySelector('[data-action="call"]').disabled = calling || waitBusy;
    node.querySelector('[data-action="snooze"]').disabled = calling;
    node.querySelector('[data-action="cancel"]').disabled = calling;
    if (calling && !node.dataset.note) note(node, 'Em ligação — atenda o seu telefone.', false, 'calling');
    if (!calling && node.dataset.note === 'calling') note(node, '');
  }

  function note(node, text, isError, kind) {
    var el = node.querySelector('[data-slot="note"]');
    node.dataset.note = text ? kind || 'note' : '';
    el.hidden = !text;
    el.textContent = text || '';
    el.classList.toggle('is-error', !!isError);
  }

  // the badge and the title count what needs calling now: a snoozed or scheduled ticket
  // waits for its time, and the call under way is being made
  function counts() {
    var waiting = Object.keys(tickets).filter(function (id) {
      return WAITING.indexOf(tickets[id].status) >= 0 && !isLater(tickets[id]);
    }).length;
    if (badge) {
      var before = badge.textContent;
      badge.textContent = String(waiting);
      badge.classList.toggle('is-empty', !waiting);
      badge.setAttribute('aria-label', waiting + ' retornos pendentes');
      if (before !== badge.textContent) {
        badge.classList.remove('bump');
        void badge.offsetWidth;
        badge.classList.add('bump');
      }
    }
    document.title = (waiting ? '(' + waiting + ') ' : '') + baseTitle;
    empty.hidden = Object.keys(tickets).length > 0;
  }

  function arrived(t) {
    cc.beep();
    var who = (t.caller_name || 'Cliente') + ' · ' + cc.phone(t.phone_number);
    cc.toast('Novo retorno', who + (t.reason ? ' — ' + t.reason : ''));
    cc.notify('Novo retorno para ligar', who);
  }

  // The whole list as the API has it now.
  function show(list, announce) {
    list = list.filter(function (t) { return SHOWN.indexOf(t.status) >= 0 && mine(t); }).sort(urgency);
    var keep = {};
    list.forEach(function (t) {
      keep[t.id] = true;
      var node = nodeOf(t.id);
      if (!node) {
        node = template.content.firstElementChild.cloneNode(true);
        if (seen[t.id] === undefined && announce) {
          node.classList.add('is-new');
          arrived(t);
        }
      }
      seen[t.id] = true;
      tickets[t.id] = t;
      fillCard(node, t);
      cards.appendChild(node); // in urgency order
    });
    cards.querySelectorAll('.card').forEach(function (node) {
      if (!keep[node.dataset.id]) { delete tickets[node.dataset.id]; node.remove(); }
    });
    counts();
  }

  // One ticket changed (an event, or an action's answer).
  function upsert(t, announce) {
    if (!t || !t.id) return;
    var list = Object.keys(tickets).map(function (id) { return tickets[id]; })
      .filter(function (x) { return x.id !== t.id; });
    list.push(t);
    show(list, announce);
  }

  function leave(id, then) {
    var node = nodeOf(id);
    delete tickets[id];
    if (!node) { counts(); return; }
    node.classList.add('is-leaving');
    setTimeout(function () { node.remove(); counts(); if (then) then(); }, 250);
  }

  var refreshing = null;
  var queued = null;
  function refresh() {
    // a change made while a read is under way may be missing from it: read once more after
    if (refreshing) {
      queued = queued || refreshing.then(function () { queued = null; return refresh(); });
      return queued;
    }
    cards.setAttribute('aria-busy', 'true');
    refreshing = cc.api('/api/callbacks', {
      params: { status: SHOWN.join(','), kind: 'callback', limit: 200 }
    }).then(function (page) {
      show(page.items, true);
    }).catch(function (err) {
      if (err.status !== 401) cc.toast('Não foi possível atualizar', err.reason || '', 'error');
    }).then(function () {
      refreshing = null;
      cards.setAttribute('aria-busy', 'false');
    });
    return refreshing;
  }

  // --- the buttons ---------------------------------------------------------------------------

  // the agent's own phone is ringing (another call is reaching it) or in a call: either way
  // it cannot be rung for this one now, and the answer says which (extensionState)
  var BUSY = { ringing: 'Ramal chamando', in_call: 'Ramal em ligação' };

  function busyRetry(node, id, seconds, state) {
    var what = BUSY[state] || 'Ramal ocupado';
    busyUntil[id] = Date.now() + seconds * 1000;
    var button = node.querySelector('[data-action="call"]');
    button.disabled = true;
    function tick() {
      var left = Math.ceil((busyUntil[id] - Date.now()) / 1000);
      if (!node.isConnected) return;
      if (left <= 0) {
        note(node, 'Pode tentar de novo agora.');
        if (tickets[id]) setButtons(node, tickets[id]);
        return;
      }
      note(node, what + ' — tente de novo em ' + left + ' s');
      setTimeout(tick, 1000);
    }
    tick();
  }

  var REFUSALS = {
    OFFLINE: 'Seu ramal está desconectado. Verifique se o telefone está ligado e registrado.',
    DND: 'O “não perturbe” está ativo no seu ramal. Desative para ligar.',
    UNKNOWN: 'Não foi possível consultar o seu ramal agora. Tente de novo em instantes.',
    already_calling: 'Este retorno já está sendo ligado.',
    click_to_call_unavailable: 'A ligação pelo sistema está desativada. Ligue pelo telefone.'
  };

  function call(node, id, button) {
    button.classList.add('is-busy');
    note(node, '');
    cc.api('/api/callbacks/' + encodeURIComponent(id) + '/initiate', { method: 'POST' })
      .then(function () {
        note(node, 'Chamando o seu ramal — atenda o telefone para falar com o cliente.', false, 'calling');
        if (tickets[id]) upsert(Object.assign({}, tickets[id], { status: 'in_progress' }));
      })
      .catch(function (err) {
        if (err.code === 'USER_BUSY') {
          busyRetry(node, id, Number(err.body.retryAfterSeconds) || 60, err.body.extensionState);
        } else {
          note(node, REFUSALS[err.code] || err.reason || 'Não foi possível ligar agora.', true);
          if (err.status === 409 && !REFUSALS[err.code]) refresh();
        }
      })
      .then(function () { button.classList.remove('is-busy'); if (tickets[id]) setButtons(node, tickets[id]); });
  }

  function snooze(node, id, button) {
    button.classList.add('is-busy');
    cc.api('/api/callbacks/' + encodeURIComponent(id) + '/snooze', { method: 'POST', body: { minutes: 5 } })
      .then(function (t) {
        note(node, '');
        cc.toast('Adiado', 'Volta a avisar ' + cc.when(t.scheduled_at) + '.', 'ok');
        upsert(t);
      })
      .catch(function (err) { note(node, err.reason || 'Não foi possível adiar.', true); })
      .then(function () { button.classList.remove('is-busy'); });
  }

  function cancel(node, id) {
    var t = tickets[id] || {};
    cc.fill(cancelDialog, { who: (t.caller_name || 'Cliente') + ' · ' + cc.phone(t.phone_number) });
    var form = cancelDialog.querySelector('form');
    form.reset();
    cancelDialog.returnValue = '';
    cancelDialog.onclose = function () {
      if (cancelDialog.returnValue !== 'cancel') return;
      var reason = form.elements.reason.value.trim();
      cc.api('/api/callbacks/' + encodeURIComponent(id) + '/cancel', {
        method: 'POST', body: reason ? { reason: reason } : {}
      }).then(function () {
        cc.toast('Retorno cancelado', t.caller_name || '', 'ok');
        leave(id);
      }).catch(function (err) { note(node, err.reason || 'Não foi possível cancelar.', true); });
    };
    cancelDialog.showModal();
  }

  cards.addEventListener('click', function (e) {
    var button = e.target.closest('button[data-action]');
    if (!button || button.disabled) return;
    var node = button.closest('.card');
    var id = node.dataset.id;
    ({ call: call, snooze: snooze, cancel: cancel })[button.dataset.action](node, id, button);
  });

  // --- notices permission -------------------------------------------------------------------

  var notifyButton = document.getElementById('notify-btn');
  if (notifyButton && 'Notification' in window && Notification.permission === 'default') {
    notifyButton.hidden = false;
    notifyButton.addEventListener('click', function () {
      Notification.requestPermission().then(function () { notifyButton.hidden = true; });
    });
  }

  // --- time passes -----------------------------------------------------------------------------

  setInterval(function () {
    cards.querySelectorAll('.card').forEach(function (node) {
      var waited = node.querySelector('[data-slot="waited"]');
      waited.textContent = cc.ago(node.dataset.createdAt);
      waited.classList.toggle('is-long', Date.now() - Date.parse(node.dataset.createdAt) > 3600000);
      var t = tickets[node.dataset.id];
      if (t) fillCard(node, t); // a snoozed ticket whose time came is one to call again
    });
    counts();
  }, 30000);

  // An event says what changed (callbacks.events.TicketChange), not the whole ticket: the list
  // is read again (one read for a burst of events), and a ticket the scanner notified again
  // while already on screen is announced again.
  var again = {};
  var pending = null;
  cc.live(function (name, change) {
    if (name === 'ticket' && change.id) {
      if (SHOWN.indexOf(change.status) < 0 && tickets[change.id]) { leave(change.id); return; }
      if (change.change === 'notified' && seen[change.id] !== undefined) again[change.id] = true;
    }
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      refresh().then(function () {
        Object.keys(again).forEach(function (id) { if (tickets[id]) arrived(tickets[id]); });
        again = {};
      });
    }, 150);
  }, refresh, document.getElementById('live'));

  refresh();
})();
