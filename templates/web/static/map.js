/* The console's map (templates/web/_map.html). Leaflet and Leaflet-Geoman are vendored under
   static/vendor/; outlines and counts come from the console's own JSON (web/geo.py); tiles only
   when the deployment names a tile server (map_tiles_url).

   compose:  click a département to tick or untick its box in the list; draw a polygon, rectangle
             or circle: #shapes gets one `polygon:`/`circle:` line per shape; every change asks
             /console/geo/reach (debounced, the previous request aborted) and shows the figures
             and the cells selected.
   view:     the areas previewed and the cells they select (the same reach request, once).
   progress: a broadcast's areas, each département coloured by the share of its SMS parts
             delivered (receipts, from the per-area roll-up) and labelled with the share sent,
             live: console.js passes on each reading of the page's progress stream (the shared
             reader's, web/progress.py), so the map adds no request of its own. */
"use strict";

(() => {
  const FRANCE = [[41.3, -5.2], [51.1, 9.6]];
  const DEBOUNCE_MS = 350;
  const MAX_QUERY = 7000; // the server reads request lines up to 8 kB: a pasted outline goes to Preview
  const COLOURS = { live: "#b0001a", drill: "#0b4f8a" };


  async function getJSON(url, signal) {
    const response = await fetch(url, {
      credentials: "same-origin", signal, headers: { Accept: "application/json" },
    });
    let data;
    try { data = await response.json(); } catch (e) { data = { error: `HTTP ${response.status}` }; }
    return { ok: response.ok, data };
  }

  /* `polygon:LAT,LON LAT,LON ...`, `polygon:{GeoJSON}` or `circle:LAT,LON,KM` as a Leaflet layer
     (null when it cannot be read: the server says why). */
  function layerOf(area, style) {
    const [kind, ...rest] = area.split(":");
    const body = rest.join(":").trim();
    try {
      if (kind === "circle") {
        const [lat, lon, km] = body.split(/[\s,]+/).map(Number);
        if ([lat, lon, km].some((n) => !Number.isFinite(n))) return null;
        return L.circle([lat, lon], { ...style, radius: km * 1000 });
      }
      if (kind === "polygon") {
        if (body.startsWith("{")) {
          let geo = JSON.parse(body);
          if (geo.type === "FeatureCollection") geo = geo.features[0];
          if (geo.type === "Feature") geo = geo.geometry;
          return L.polygon(geo.coordinates[0].map(([lon, lat]) => [lat, lon]), style);
        }
        const ring = body.split(/[\s;]+/).filter(Boolean).map((p) => p.split(",").map(Number));
        if (ring.length < 3 || ring.some((p) => p.length !== 2 || p.some((n) => !Number.isFinite(n)))) return null;
        return L.polygon(ring.slice(0, -1), style);
      }
    } catch (e) { return null; }
    return null;
  }

  /* The départements of the communes named (INSEE codes: 75056 in 75, 2A004 in 2A, 97105 in
     971): outlined on the map, not filled (no commune outlines are vendored). */
  function communeDepartements(areas) {
    return new Set(areas.filter((a) => a.startsWith("commune:")).map((a) => {
      const code = a.slice("commune:".length).trim().toUpperCase();
      return code.startsWith("97") ? code.slice(0, 3) : code.slice(0, 2);
    }));
  }

  function areaOf(layer) {
    const f = (n) => Number(n.toFixed(5));
    if (layer instanceof L.Circle) {
      const c = layer.getLatLng();
      return `circle:${f(c.lat)},${f(c.lng)},${Number((layer.getRadius() / 1000).toFixed(3))}`;
    }
    let ring = layer.getLatLngs();
    while (Array.isArray(ring[0])) ring = ring[0];
    const points = [...ring, ring[0]].map((p) => `${f(p.lat)},${f(p.lng)}`);
    return `polygon:${points.join(" ")}`;
  }

  class AreaMap {
    constructor(panel) {
      this.panel = panel;
      this.mode = panel.dataset.map;
      this.kind = panel.dataset.kind;
      this.colour = COLOURS[this.kind] || COLOURS.live;
      this.words = JSON.parse(panel.dataset.words || "{}");
      this.number = new Intl.NumberFormat(panel.dataset.lang === "fr" ? "fr-FR" : "en-GB");
      this.percent = new Intl.NumberFormat(panel.dataset.lang === "fr" ? "fr-FR" : "en-GB", { style: "percent", maximumFractionDigits: 0 });
      this.map = L.map(panel.querySelector(".map-canvas"), { zoomSnap: 0.25 });
      this.map.attributionControl.setPrefix(false);
      this.map.attributionControl.addAttribution(this.words.attribution);
      this.map.fitBounds(FRANCE);
      this.byCode = new Map();
      this.selected = new Set();
      this.progress = null;
      this.shapes = L.featureGroup().addTo(this.map);
      this.cells = L.geoJSON(null, {
        interactive: false, style: { color: "#6a1b9a", weight: 1, fillColor: "#8e24aa", fillOpacity: 0.3 },
      }).addTo(this.map);
      this.pending = null;
      this.timer = null;
    }

    async start() {
      const [deps, regions, tiles] = await Promise.all([
        getJSON("/console/geo/departements.json"), getJSON("/console/geo/regions.json"),
        getJSON("/console/geo/tiles.json"),
      ]);
      if (!deps.ok) return this.fail(deps.data.error);
      if (tiles.ok && tiles.data.url) {
        L.tileLayer(tiles.data.url, { attribution: tiles.data.attribution, maxZoom: 18 }).addTo(this.map);
      }
      this.departements = L.geoJSON(deps.data, {
        style: (f) => this.styleOf(f.properties.code),
        onEachFeature: (f, layer) => {
          const p = f.properties;
          this.byCode.set(p.code, { layer, props: p });
          layer.bindTooltip(() => this.tooltipOf(p), { sticky: true });
          if (this.mode === "compose") layer.on("click", () => this.toggle(p.code));
        },
      }).addTo(this.map);
      if (regions.ok) {
        L.geoJSON(regions.data, { interactive: false, style: { color: "#37474f", weight: 2, fill: false } }).addTo(this.map);
      }
      this.shapes.bringToFront();
      this.cells.bringToFront();
      this.panel.querySelectorAll("[data-map-jump]").forEach((button) => {
        button.addEventListener("click", () => this.jump(button.dataset.mapJump));
      });
      if (this.mode === "compose") this.startCompose();
      else if (this.mode === "view") this.startView(JSON.parse(this.panel.dataset.areas || "[]"));
      else this.startProgress();
      this.panel.dataset.mapReady = "true";
    }

    styleOf(code) {
      if (this.progress) {
        const area = this.progress[code];
        if (!area) return { color: "#90a4ae", weight: 0.6, fillOpacity: 0.04, fillColor: "#90a4ae" };
        // light (nothing delivered) to dark green (all delivered), always with a bold outline
        const light = 92 - Math.round((area.delivered_share || 0) * 62);
        // dashed: part of the département (some communes, a shape's cells), not all of it
        const dash = this.partial && this.partial.has(code) ? "6 4" : null;
        return { color: "#1e6b34", weight: 2, dashArray: dash, fillColor: `hsl(140, 56%, ${light}%)`, fillOpacity: 0.85 };
      }
      if (this.selected.has(code)) return { color: this.colour, weight: 2, fillColor: this.colour, fillOpacity: 0.35 };
      if (this.partial && this.partial.has(code)) return { color: this.colour, weight: 2, dashArray: "6 4", fillOpacity: 0.04, fillColor: this.colour };
      return { color: "#78909c", weight: 0.6, fillColor: "#90a4ae", fillOpacity: 0.06 };
    }

    tooltipOf(p) {
      let text = `${p.code} ${p.name}`;
      const area = this.progress && this.progress[p.code];
      if (area) {
        text += ` — ${this.percent.format(area.share)} ${this.words.sent}, ${this.percent.format(area.delivered_share || 0)} ${this.words.delivered} (${this.number.format(area.recipients)})`;
      }
      return text;
    }

    restyle() {
      this.byCode.forEach(({ layer, props }) => layer.setStyle(this.styleOf(props.code)));
    }

    /* Départements a list of areas names: dep:XX, and every département of region:YY. */
    departementsOf(areas) {
      const out = new Set();
      areas.forEach((area) => {
        const [kind, code] = area.split(":");
        if (kind === "dep") out.add(code);
        if (kind === "region") this.byCode.forEach(({ props }) => { if (props.region === code) out.add(props.code); });
      });
      return out;
    }

    drawAreas(areas, style) {
      this.shapes.clearLayers();
      areas.forEach((area) => {
        const layer = layerOf(area, style);
        if (layer) this.shapes.addLayer(layer);
      });
    }

    /* Mainland France, or one overseas département, in view. */
    jump(code) {
      const d = this.byCode.get(code);
      if (code === "mainland" || !d) this.map.fitBounds(FRANCE);
      else this.map.fitBounds(d.layer.getBounds(), { padding: [10, 10] });
    }

    fitTarget() {
      const bounds = L.latLngBounds([]);
      const codes = new Set([...this.selected, ...Object.keys(this.progress || {})]);
      codes.forEach((code) => { const d = this.byCode.get(code); if (d) bounds.extend(d.layer.getBounds()); });
      if (this.shapes.getLayers().length) bounds.extend(this.shapes.getBounds());
      if (this.cells.getLayers().length) bounds.extend(this.cells.getBounds());
      if (bounds.isValid()) this.map.fitBounds(bounds, { padding: [20, 20], maxZoom: 13 });
    }

    // -- compose -------------------------------------------------------------------------------

    startCompose() {
      this.form = this.panel.closest("form");
      this.textarea = this.panel.querySelector("[data-map-shapes]");
      const style = { color: this.colour, weight: 3, fillOpacity: 0.12 };
      this.map.pm.setLang(this.panel.dataset.lang === "fr" ? "fr" : "en");
      this.map.pm.setGlobalOptions({ allowSelfIntersection: false, pathOptions: style, templineStyle: style, hintlineStyle: { ...style, dashArray: [5, 5] } });
      this.map.pm.addControls({
        position: "topleft", drawMarker: false, drawCircleMarker: false, drawPolyline: false,
        drawText: false, cutPolygon: false, rotateMode: false,
      });
      this.map.on("pm:create", (e) => { this.shapes.addLayer(e.layer); this.watch(e.layer); this.shapesChanged(); });
      this.map.on("pm:remove", (e) => { this.shapes.removeLayer(e.layer); this.shapesChanged(); });
      this.readShapes();
      this.textarea.addEventListener("change", () => { this.readShapes(); this.schedule(); });
      this.form.addEventListener("change", (e) => {
        if (e.target.name === "area" || e.target.name === "extra_areas") { this.readTicked(); this.schedule(); }
      });
      this.readTicked();
      this.schedule();
    }

    watch(layer) {
      layer.on("pm:edit pm:dragend pm:markerdragend", () => this.shapesChanged());
    }

    readShapes() {
      const lines = this.textarea.value.split("\n").map((l) => l.trim()).filter(Boolean);
      this.drawAreas(lines, { color: this.colour, weight: 3, fillOpacity: 0.12 });
      this.shapes.eachLayer((layer) => this.watch(layer));
    }

    shapesChanged() {
      const lines = [];
      this.shapes.eachLayer((layer) => lines.push(areaOf(layer)));
      this.textarea.value = lines.join("\n");
      this.schedule();
    }

    readTicked() {
      this.selected = this.departementsOf(this.composeAreas());
      this.partial = communeDepartements(this.composeAreas());
      this.restyle();
    }

    toggle(code) {
      const box = document.getElementById(`area-dep-${code}`);
      if (!box) return;
      box.checked = !box.checked;
      box.dispatchEvent(new Event("change", { bubbles: true }));
    }

    composeAreas() {
      const ticked = [...this.form.querySelectorAll("input[name=area]:checked")].map((b) => b.value);
      const extra = this.form.querySelector("[name=extra_areas]");
      const typed = extra ? extra.value.split(/[\s,;]+/).filter(Boolean) : [];
      const shapes = this.textarea.value.split("\n").map((l) => l.trim()).filter(Boolean);
      return [...new Set([...ticked, ...typed, ...shapes])];
    }

    schedule() {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.count(this.composeAreas()), DEBOUNCE_MS);
    }

    // -- reach (compose and view) ---------------------------------------------------------------

    async count(areas) {
      if (this.pending) this.pending.abort();
      const status = this.panel.querySelector("[data-map-status]");
      if (!areas.length) {
        this.show(null);
        status.textContent = this.words.empty;
        return null;
      }
      const params = new URLSearchParams({ kind: this.kind });
      areas.forEach((a) => params.append("area", a));
      if (params.toString().length > MAX_QUERY) { this.fail(this.words.too_long); status.textContent = ""; return null; }
      this.pending = new AbortController();
      this.panel.dataset.mapBusy = "true";
      status.textContent = this.words.counting;
      let answer;
      try {
        answer = await getJSON(`/console/geo/reach?${params}`, this.pending.signal);
      } catch (e) {
        if (e.name === "AbortError") return null;
        answer = { ok: false, data: { error: String(e) } };
      }
      this.pending = null;
      delete this.panel.dataset.mapBusy;
      status.textContent = "";
      if (!answer.ok) { this.fail(answer.data.error, answer.data.details); return null; }
      this.show(answer.data);
      return answer.data;
    }

    fail(message, details) {
      const error = this.panel.querySelector("[data-map-error]");
      error.textContent = [message, ...(details || [])].join(" ");
      error.hidden = false;
      this.panel.querySelectorAll("[data-map-field]").forEach((el) => { el.textContent = "–"; });
      this.cells.clearLayers();
    }

    show(data) {
      const error = this.panel.querySelector("[data-map-error]");
      error.hidden = true;
      this.cells.clearLayers();
      const fields = { recipients: "–", cells: "–", present: "–", stale: "–", overspill: "–" };
      if (data) {
        fields.recipients = this.number.format(data.recipients);
        const presence = data.presence;
        if (presence) {
          fields.cells = this.number.format(presence.cells);
          fields.present = this.number.format(presence.present);
          fields.stale = this.number.format(presence.stale);
          if (presence.shapes.length) {
            fields.overspill = this.percent.format(Math.max(...presence.shapes.map((s) => s.overspill)));
          }
        } else if (data.cells_total) {
          fields.cells = this.number.format(data.cells_total);
        }
        this.cells.addData(data.cells);
        const more = data.cells_total - data.cells.features.length;
        if (more > 0) this.panel.querySelector("[data-map-status]").textContent = `${this.number.format(more)} ${this.words.cells_more}`;
      }
      Object.entries(fields).forEach(([name, value]) => {
        const el = this.panel.querySelector(`[data-map-field=${name}]`);
        if (el) el.textContent = value;
      });
      this.panel.dataset.mapCount = data ? String(data.recipients) : "";
    }

    // -- view and progress ------------------------------------------------------------------------

    async startView(areas) {
      this.selected = this.departementsOf(areas);
      this.partial = communeDepartements(areas);
      this.restyle();
      this.drawAreas(areas, { color: this.colour, weight: 3, fillOpacity: 0.12, interactive: false });
      await this.count(areas);
      this.fitTarget();
    }

    async startProgress() {
      const answer = await getJSON(this.panel.dataset.source);
      if (!answer.ok) return this.fail(answer.data.error);
      this.drawAreas(answer.data.areas, { color: "#1f2933", weight: 3, fill: false, interactive: false });
      this.cells.addData(answer.data.cells);
      this.applyProgress(answer.data);
      this.fitTarget();
      // Then live, from the page's progress stream (console.js passes each reading on).
      document.addEventListener("broadcast-progress", (e) => {
        const data = e.detail;
        // A reading without areas (the page's own first one is rendered without them) says
        // nothing of them: it must not blank the map (every broadcast has at least one area).
        if (!data.areas || !Object.keys(data.areas).length) return;
        this.applyProgress({ ...answer.data, state: data.state, final: data.final, departements: data.areas });
      });
    }

    applyProgress(data) {
      const legend = this.panel.querySelector(".map-legend");
      this.partial = new Set(Object.keys(data.departements).filter((d) => !data.whole.includes(d)));
      if (data.state === "pending_approval" || data.state === "draft") {
        // Nothing can have been sent: the areas in the broadcast's colour, as on its preview
        // (a département reached in part, communes or a shape's cells, keeps only its outline).
        if (legend) legend.hidden = true;
        this.selected = new Set(data.whole);
        this.restyle();
        this.panel.dataset.mapFinal = String(data.final);
        return;
      }
      if (legend) legend.hidden = false;
      this.progress = data.departements;
      this.restyle();
      const labelled = Object.keys(this.progress).length <= 12;
      Object.entries(this.progress).forEach(([code, area]) => {
        const d = this.byCode.get(code);
        if (!d) return;
        d.layer.unbindTooltip();
        if (labelled) {
          d.layer.bindTooltip(
            // the colour's figure (delivered), short: neighbours' labels must not overlap
            `${code} · ${this.percent.format(area.delivered_share || 0)}`,
            { permanent: true, direction: "center", className: "map-label" });
        } else {
          d.layer.bindTooltip(() => this.tooltipOf(d.props), { sticky: true });
        }
      });
      this.panel.dataset.mapShares = JSON.stringify(
        Object.fromEntries(Object.entries(this.progress).map(([code, a]) => [code, a.share])),
      );
      this.panel.dataset.mapDelivered = JSON.stringify(
        Object.fromEntries(Object.entries(this.progress).map(([code, a]) => [code, a.delivered_share || 0])),
      );
      this.panel.dataset.mapFinal = String(data.final);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (typeof L === "undefined") return;
    document.querySelectorAll("[data-map]").forEach((panel) => {
      const map = new AreaMap(panel);
      panel.areaMap = map; // for the browser tests: they place clicks by latitude and longitude
      map.start().catch((e) => map.fail(String(e)));
    });
  });
})();
