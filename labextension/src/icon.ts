import { LabIcon } from '@jupyterlab/ui-components';

/** A small "M" of stacked blocks, after Mistral's logo colours; follows the theme's text
 * colour where it is not orange. */
const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">
  <g class="jp-icon3" fill="#616161">
    <rect x="2" y="3" width="4" height="18"/>
    <rect x="18" y="3" width="4" height="18"/>
    <rect x="10" y="11" width="4" height="10"/>
  </g>
  <rect x="6" y="3" width="4" height="4" fill="#F7D046"/>
  <rect x="14" y="3" width="4" height="4" fill="#F7D046"/>
  <rect x="6" y="7" width="12" height="4" fill="#F2A73B"/>
  <rect x="6" y="11" width="4" height="4" fill="#EE792F"/>
  <rect x="14" y="11" width="4" height="4" fill="#EE792F"/>
  <rect x="2" y="15" width="20" height="2" fill="#EB5829" opacity="0.85"/>
</svg>`;

export const mistralIcon = new LabIcon({
  name: 'mistral-magic:icon',
  svgstr: svg
});
