// labshare's JupyterLab plugins: this server's GPU reclaim warnings as Lab
// notifications, and the current kernel's cards in Lab's status bar.
//
// Written by hand as the module-federation container JupyterLab loads
// (window._JUPYTERLAB[name] with init and get), so labshare needs no
// JavaScript build.  The notices plugin uses only the application object Lab
// hands it, its server settings and two of Lab's own commands.  The status
// bar plugin needs Lab's IStatusBar token and Lumino's Widget and Signal
// classes: it takes the very modules Lab itself runs from the share scope Lab
// passes to `init`, so its token is the one Lab's status bar provides.  A Lab
// whose share scope lacks them (another major version, an app without a
// status bar) gets the notices alone.
(function () {
  "use strict";

  const NOTICES = "api/labshare/gpu-notices";
  const GPUS = (kernel) => `api/labshare/kernels/${encodeURIComponent(kernel)}/gpus`;
  let shareScope = null;

  // The answer as JSON; null for 404 (a server without labshare's extension, or a kernel gone).
  async function ask(settings, path) {
    const headers = settings.token ? { Authorization: `token ${settings.token}` } : {};
    const answer = await settings.fetch.call(window, settings.baseUrl + path, { ...settings.init, headers });
    if (answer.status === 404) {
      return null;
    }
    if (!answer.ok) {
      throw new Error(`${path} answered ${answer.status}`);
    }
    return answer.json();
  }

  // The notices plugin asks every tenth of the warning time; the status bar, which asks every few
  // seconds, calls `now` when it sees a countdown start or stop, so the toast comes with it.
  const notices = { now: () => {} };

  function activateNotices(app) {
    const settings = app.serviceManager.serverSettings;
    const shown = new Map();  // "kernel id@time" -> the notification's id
    let timer = null;
    let asking = false;
    let again = false;  // asked for while a question was out: ask once more when it is answered

    async function show(current) {
      const keys = new Set();
      for (const notice of current) {
        const key = `${notice.kernel_id}@${notice.at}`;
        keys.add(key);
        if (!shown.has(key)) {
          const options = { autoClose: false, data: { labshare: key } };
          shown.set(key, await app.commands.execute("apputils:notify",
                                                    { message: notice.message, type: "warning", options }));
        }
      }
      for (const [key, id] of shown) {
        if (!keys.has(key)) {  // used again, or shut down: the warning no longer holds
          shown.delete(key);
          await app.commands.execute("apputils:dismiss-notification", { id });
        }
      }
    }

    async function poll() {
      clearTimeout(timer);
      if (asking) {
        again = true;
        return;
      }
      asking = true;
      again = false;
      let every = 30;
      try {
        const answer = (await ask(settings, NOTICES)) || { every: null };
        if (answer.every === null) {
          notices.now = () => {};
          return;  // nothing on this server is ever reclaimed: stop asking
        }
        every = answer.every;
        await show(answer.notices);
      } catch (error) {
        console.warn("labshare: could not read the GPU notices", error);
      } finally {
        asking = false;
      }
      timer = setTimeout(poll, again ? 0 : every * 1000);
    }

    notices.now = () => void poll();
    void app.restored.then(poll);
  }

  const noticesPlugin = {
    id: "labshare:gpu-notices",
    description: "Warns in Lab before labshare gives back the GPU of an idle kernel.",
    autoStart: true,
    activate: activateNotices,
  };

  function statusPlugin(IStatusBar, Widget, Signal) {
    function activate(app, statusBar) {
      if (!statusBar) {
        return;
      }
      const settings = app.serviceManager.serverSettings;
      const item = new Widget();
      item.id = "labshare-gpu-status";
      const text = document.createElement("span");
      text.className = "jp-StatusBar-TextItem labshare-GpuStatus-cards";
      const countdown = document.createElement("span");
      countdown.className = "jp-StatusBar-TextItem labshare-GpuStatus-countdown";
      countdown.style.color = "var(--jp-warn-color0)";
      countdown.style.fontWeight = "bold";
      countdown.style.paddingLeft = "6px";
      item.node.append(text, countdown);
      item.node.style.display = "flex";
      item.node.style.alignItems = "center";

      const changed = new Signal(item);
      let enabled = true;  // false once the server says it leases no cards per kernel
      let watched = null;  // the session context whose kernel changes we follow
      let timer = null;
      let asked = 0;  // the latest question; an older answer arriving late is dropped
      let reclaiming = null;  // the kernel id whose countdown is shown

      const context = () => {
        const widget = app.shell.currentWidget;
        return widget && widget.sessionContext ? widget.sessionContext : null;
      };

      function show(answer) {
        text.textContent = answer ? answer.text : "";
        countdown.textContent = answer && answer.countdown ? answer.countdown : "";
        item.node.title = answer ? answer.title : "";
        const now = answer && answer.countdown ? answer.kernel_id : null;
        if (now !== reclaiming) {  // a warning came or went: the notification follows at once
          reclaiming = now;
          notices.now();
        }
      }

      async function refresh() {
        clearTimeout(timer);
        if (!enabled) {
          return;
        }
        const mine = ++asked;
        const session = context();
        const kernel = session && session.session ? session.session.kernel : null;
        let every = 3;
        if (!kernel) {
          show(null);
        } else if (!document.hidden) {  // a tab in the background asks nothing
          try {
            const answer = await ask(settings, GPUS(kernel.id));
            if (mine !== asked) {
              return;
            }
            if (answer === null) {
              show(null);
              every = 30;
            } else if (answer.every === null) {
              enabled = false;  // this server leases no cards per kernel: nothing to show, ever
              show(null);
              changed.emit(undefined);
              return;
            } else {
              show(answer);
              every = answer.every;
            }
          } catch (error) {
            console.warn("labshare: could not read the kernel's GPUs", error);
            every = 30;
          }
        }
        if (mine === asked) {
          timer = setTimeout(refresh, every * 1000);
        }
      }

      function follow() {  // the tab in front changed: watch its kernel, and ask at once
        if (watched) {
          watched.kernelChanged.disconnect(refresh);
        }
        watched = context();
        if (watched) {
          watched.kernelChanged.connect(refresh);
        }
        if (enabled) {
          show(null);
          void refresh();
        }
      }

      statusBar.registerStatusItem("labshare:gpu-status", {
        item,
        align: "left",
        rank: 2,
        isActive: () => enabled && context() !== null,
        activeStateChanged: changed,
      });
      if (app.shell.currentChanged) {  // Lab's shell; a shell without it shows the first tab's kernel
        app.shell.currentChanged.connect(follow);
      }
      document.addEventListener("visibilitychange", () => {
        if (enabled && !document.hidden) {
          void refresh();
        }
      });
      void app.restored.then(follow);
    }

    return {
      id: "labshare:gpu-status",
      description: "Shows the current kernel's GPU cards, and labshare's reclaim countdown, in Lab's status bar.",
      autoStart: true,
      optional: [IStatusBar],
      activate,
    };
  }

  // A shared module of this major version, as Lab itself runs it: a copy already loaded (Lab's core
  // packages are, by the time Lab asks for our plugins), else the newest offered.
  async function shared(name, major) {
    const offered = (shareScope && shareScope[name]) || {};
    const versions = Object.keys(offered).filter((version) => version.split(".")[0] === String(major));
    if (!versions.length) {
      return null;
    }
    const number = (version) => version.split(/[.-]/).slice(0, 3).map((part) => parseInt(part, 10) || 0);
    versions.sort((a, b) => {
      const [x, y] = [number(a), number(b)];
      return (!!offered[a].loaded - !!offered[b].loaded) || x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
    });
    const factory = await offered[versions[versions.length - 1]].get();
    return factory();
  }

  async function plugins() {
    try {
      const [statusbar, widgets, signaling] = await Promise.all([
        shared("@jupyterlab/statusbar", 4), shared("@lumino/widgets", 2), shared("@lumino/signaling", 2),
      ]);
      if (statusbar && widgets && signaling) {
        return [noticesPlugin, statusPlugin(statusbar.IStatusBar, widgets.Widget, signaling.Signal)];
      }
      console.warn("labshare: this Lab shares no status bar of version 4: the GPU status is not shown");
    } catch (error) {
      console.warn("labshare: the GPU status bar item could not be set up", error);
    }
    return [noticesPlugin];
  }

  const containers = (window._JUPYTERLAB = window._JUPYTERLAB || {});
  containers.labshare = {
    init(scope) {
      shareScope = scope;
    },
    async get() {
      const found = await plugins();
      return () => ({ __esModule: true, default: found });
    },
  };
})();
