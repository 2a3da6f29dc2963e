// Resolve hook: retry a relative specifier that Node cannot find with `.js` appended.
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    const relative = specifier.startsWith('./') || specifier.startsWith('../');
    if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !relative || specifier.endsWith('.js')) throw error;
    return nextResolve(`${specifier}.js`, context);
  }
}
