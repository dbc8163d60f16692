/*===- artifact_format.h - On-disk layout of .kiln artifacts ---*- C -*-===*
 *
 * Shared by the writer (lib/Artifact) and the reader (runtime/src) so the two
 * cannot drift apart. docs/artifact-format.md is the normative description;
 * this header only names its constants and fixed-size structs. Everything is
 * little-endian; the structs match the file byte for byte on the
 * little-endian hosts Kiln supports (x86-64, aarch64).
 *
 *===--------------------------------------------------------------------===*/
#ifndef KILN_ARTIFACT_FORMAT_H
#define KILN_ARTIFACT_FORMAT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_ART_MAGIC "KILNART" /* 7 chars + NUL fill the 8-byte field. */
#define KILN_ART_MAGIC_SIZE 8
#define KILN_ART_VERSION_MAJOR 3u
#define KILN_ART_VERSION_MINOR 4u
/* Header size, section alignment and constant alignment: one cache line, and
 * enough for any vector load the kernels might do on mapped constants. */
#define KILN_ART_ALIGN 64u
#define KILN_ART_SECTION_NAME_SIZE 32u

#define KILN_ART_SECTION_META "meta"
#define KILN_ART_SECTION_CONSTANTS "constants"
#define KILN_ART_SECTION_EXEC_PREFIX "exec."
#define KILN_ART_SECTION_SOURCE "source"

#define KILN_ART_FNV_OFFSET_BASIS 0xcbf29ce484222325ull
#define KILN_ART_FNV_PRIME 0x100000001b3ull

typedef struct kiln_art_header {
  char magic[KILN_ART_MAGIC_SIZE];
  uint32_t version_major;
  uint32_t version_minor;
  uint64_t file_size;
  uint64_t section_table_offset;
  uint32_t section_count;
  uint32_t reserved;  /* Written 0, ignored by readers. */
  uint64_t checksum;  /* FNV-1a 64 over bytes [64, file_size). */
  uint8_t padding[16]; /* Written 0, ignored by readers. */
} kiln_art_header;

typedef struct kiln_art_section {
  char name[KILN_ART_SECTION_NAME_SIZE]; /* NUL-padded; at most 31 chars. */
  uint64_t offset;                       /* Multiple of KILN_ART_ALIGN. */
  uint64_t size;
} kiln_art_section;

/* What of a specializing input decides the code (bits of its record). */
enum {
  KILN_ART_SPECIALIZE_VALUE = 1, /* its value (a shape input) */
  KILN_ART_SPECIALIZE_SHAPE = 2  /* its shape: dims of -1 in the signature */
};

/* Values of the buffer kind field in the meta section. */
enum {
  KILN_ART_BUFFER_INPUT = 0,
  KILN_ART_BUFFER_OUTPUT = 1,
  KILN_ART_BUFFER_CONSTANT = 2,
  KILN_ART_BUFFER_TRANSIENT = 3
};

#ifdef __cplusplus
static_assert(sizeof(kiln_art_header) == 64, "header must be 64 bytes");
static_assert(sizeof(kiln_art_section) == 48, "section entry must be 48 bytes");
#else
_Static_assert(sizeof(kiln_art_header) == 64, "header must be 64 bytes");
_Static_assert(sizeof(kiln_art_section) == 48, "section entry must be 48 bytes");
#endif

/* Checksum helper usable incrementally: pass KILN_ART_FNV_OFFSET_BASIS first. */
static inline uint64_t kiln_art_fnv1a(uint64_t hash, const void *data,
                                      uint64_t size) {
  const unsigned char *p = (const unsigned char *)data;
  for (uint64_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= KILN_ART_FNV_PRIME;
  }
  return hash;
}

#ifdef __cplusplus
}
#endif

#endif /* KILN_ARTIFACT_FORMAT_H */
