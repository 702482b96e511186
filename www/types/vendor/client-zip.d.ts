// build.sh vendors the library here.
export * from 'client-zip';
