// labshare's JupyterLab plugin: this server's GPU reclaim warnings as Lab notifications.
//
// Written by hand as the module-federation container JupyterLab loads
// (window._JUPYTERLAB[name] with init and get), so labshare needs no
// JavaScript build: the plugin uses only the application object Lab hands
// it, its server settings and two of Lab's own commands.
(function () {
  "use strict";

  const NOTICES = "api/labshare/gpu-notices";

  async function ask(settings) {
    const headers = settings.token ? { Authorization: `token ${settings.token}` } : {};
    const answer = await settings.fetch.call(window, settings.baseUrl + NOTICES, { ...settings.init, headers });
    if (answer.status === 404) {
      return { notices: [], every: null };  // a server without labshare's extension: stop asking
    }
    if (!answer.ok) {
      throw new Error(`${NOTICES} answered ${answer.status}`);
    }
    return answer.json();
  }

  function activate(app) {
    const settings = app.serviceManager.serverSettings;
    const shown = new Map();  // "kernel id@time" -> the notification's id

    async function show(notices) {
      const current = new Set();
      for (const notice of notices) {
        const key = `${notice.kernel_id}@${notice.at}`;
        current.add(key);
        if (!shown.has(key)) {
          const options = { autoClose: false, data: { labshare: key } };
          shown.set(key, await app.commands.execute("apputils:notify",
                                                    { message: notice.message, type: "warning", options }));
        }
      }
      for (const [key, id] of shown) {
        if (!current.has(key)) {  // used again, or shut down: the warning no longer holds
          shown.delete(key);
          await app.commands.execute("apputils:dismiss-notification", { id });
        }
      }
    }

    async function poll() {
      let every = 30;
      try {
        const answer = await ask(settings);
        if (answer.every === null) {
          return;
        }
        every = answer.every;
        await show(answer.notices);
      } catch (error) {
        console.warn("labshare: could not read the GPU notices", error);
      }
      setTimeout(poll, every * 1000);
    }

    void app.restored.then(poll);
  }

  const plugin = {
    id: "labshare:gpu-notices",
    description: "Warns in Lab before labshare gives back the GPU of an idle kernel.",
    autoStart: true,
    activate,
  };

  const containers = (window._JUPYTERLAB = window._JUPYTERLAB || {});
  containers.labshare = {
    init() {},
    get() {
      return Promise.resolve(() => ({ __esModule: true, default: [plugin] }));
    },
  };
})();
