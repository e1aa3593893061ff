// The benchmark's other renderer (bench/app.py --positions-only): deck.gl's ScatterplotLayer
// with binary attributes, the alternative the map was measured against.
import { Deck, OrthographicView } from '@deck.gl/core';
import { ScatterplotLayer } from '@deck.gl/layers';

window.deckgl = { Deck, OrthographicView, ScatterplotLayer };
