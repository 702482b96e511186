// sw-precache.mjs replaces this placeholder in the built sw.js with the list of shell files.
declare const __CUTOUT_SHELL_FILES__: string[];
