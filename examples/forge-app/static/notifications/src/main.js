// main.js - entry of the bundle: starts the background script once.
import { start } from './background.js';

start().catch((e) => console.error('notify-gateway: the background script could not start:', e));
