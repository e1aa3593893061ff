// The benchmark's baseline (bench/app.py): regl-scatterplot alone, with nothing of curator's,
// exposed for a static page that draws the same points as the app.
import createScatterplot from 'regl-scatterplot';

window.createScatterplot = createScatterplot;
