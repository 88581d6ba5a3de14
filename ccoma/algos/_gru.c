/* A GRU layer over whole sequences, forward and backward, for the learners' unroll on CPU.
 *
 * Built at first use by ccoma/algos/fused_gru.py (the system C compiler, -O3 for this CPU) and
 * called through ctypes. Layout: packed time-major, row-major float32 arrays: step t's rows follow
 * step t-1's, rows[t] of them, and row i of step t continues row i of step t-1 (so the sequences
 * still running at each step are a prefix, rows[] never grows). A padded batch of M sequences of T
 * steps is the case rows[t] = M; sequences of different lengths, ordered longest first, skip their
 * padding. The initial hidden state is zero (every unroll starts an episode). Matrix products go
 * to the BLAS sgemm_ that torch links (its function pointer is passed in), so they run the same
 * kernels as torch's own products; what this file adds is the per-step gate arithmetic in one pass
 * over each row, with the gates kept for the backward pass, and no per-operator dispatch or autograd
 * bookkeeping per time step.
 *
 * The gates are torch.nn.GRU's (and GRUCell's):
 *   r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
 *   z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
 *   n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
 *   h' = (h - n) * z + n                                  (= (1 - z) * n + z * h)
 * with the weight rows stacked r, z, n as in torch. exp and tanh are written here (Cephes-style
 * polynomials, within a few float ulps of libm) so that the compiler can vectorise the gate loop.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_t)(const char*, const char*, const int*, const int*, const int*, const float*,
                        const float*, const int*, const float*, const int*, const float*, float*,
                        const int*);

static inline float exp_f(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* 2^k e^f with k = round(x / ln 2), f = x - k ln 2 (ln 2 split in two for precision) */
    float k = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float f = x - k * 0.693359375f;
    f = f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    p = p * (f * f) + f + 1.0f;
    int bits = ((int)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

static inline float tanh_f(float x) {
    float a = x < 0.0f ? -x : x;
    float s = x * x;                      /* |x| < 0.625: odd polynomial */
    float p = -5.70498872745e-3f;
    p = p * s + 2.06390887954e-2f;
    p = p * s - 5.37397155531e-2f;
    p = p * s + 1.33314422036e-1f;
    p = p * s - 3.33332819422e-1f;
    float small = p * s * x + x;
    float big = 1.0f - 2.0f / (exp_f(2.0f * a) + 1.0f);   /* otherwise: 1 - 2 / (e^{2|x|} + 1) */
    big = x < 0.0f ? -big : big;
    return a < 0.625f ? small : big;
}

/* One row of one step: gi, gh [3H] (biases included) -> h [H]; keeps r, z, n and gh_n. */
static void forward_row(int H, const float* restrict gi, const float* restrict gh,
                        const float* restrict hp, float* restrict h, float* restrict rzn,
                        float* restrict ghn) {
    for (int j = 0; j < H; ++j) {
        float r = sigmoid_f(gh[j] + gi[j]);
        float z = sigmoid_f(gh[H + j] + gi[H + j]);
        float hn = gh[2 * H + j];
        float n = tanh_f(gi[2 * H + j] + hn * r);
        h[j] = (hp[j] - n) * z + n;
        rzn[j] = r;
        rzn[H + j] = z;
        rzn[2 * H + j] = n;
        ghn[j] = hn;
    }
}

/* One row of one step backwards: d = dL/dh_t (from the output and from step t+1) -> the gradients
 * of the input-side and hidden-side pre-activations (dgi, dgh [3H]) and d h_{t-1} through z (dh). */
static void backward_row(int H, const float* restrict dout, const float* restrict hp,
                         const float* restrict rzn, const float* restrict ghn,
                         float* restrict dgi, float* restrict dgh, float* restrict dh) {
    for (int j = 0; j < H; ++j) {
        float d = dout[j] + dh[j];
        float r = rzn[j], z = rzn[H + j], n = rzn[2 * H + j];
        float dn = d * (1.0f - z);
        float dz = d * (hp[j] - n);
        float dan = dn * (1.0f - n * n);
        float dar = dan * ghn[j] * r * (1.0f - r);
        float daz = dz * z * (1.0f - z);
        dgi[j] = dar;
        dgi[H + j] = daz;
        dgi[2 * H + j] = dan;
        dgh[j] = dar;
        dgh[H + j] = daz;
        dgh[2 * H + j] = dan * r;
        dh[j] = d * z;
    }
}

static void fill_rows(int M, int G, const float* restrict b, float* restrict out) {
    for (int i = 0; i < M; ++i) memcpy(out + (size_t)i * G, b, sizeof(float) * (size_t)G);
}

/* bias gradients: sums over every row of every step, accumulated in double (a float running sum
 * over ~20K rows would lose ~1e-5 of its value; torch's pairwise sums do not) */
static void add_column_sums(int M, int G, const float* restrict a, double* restrict acc) {
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < G; ++j) acc[j] += a[(size_t)i * G + j];
}

/* Packed layout (above): P = rows[0] + ... + rows[T-1] rows in all.
 * x [P, I], w_ih [3H, I], w_hh [3H, H], b_ih, b_hh [3H] -> hs [P, H].
 * keep != 0: rzn [P, 3H] and ghn [P, H] receive every step's gates (for the backward pass);
 * keep == 0: they are one step's scratch ([rows[0], 3H], [rows[0], H]).
 * work: [2, rows[0], 3H] scratch; zeros: [rows[0], H] of zeros (the initial hidden state). */
void ccoma_gru_forward(sgemm_t gemm, int T, const int* rows, int I, int H, const float* x,
                       const float* w_ih, const float* w_hh, const float* b_ih, const float* b_hh,
                       float* hs, float* rzn, float* ghn, int keep, float* work, const float* zeros) {
    const int G = 3 * H;
    const float one = 1.0f;
    float* gi = work;
    float* gh = work + (size_t)rows[0] * G;
    size_t off = 0, prev = 0;                 /* first row of step t, of step t-1 */
    for (int t = 0; t < T; ++t) {
        const int M = rows[t];
        if (M <= 0) break;
        const float* hp = t > 0 ? hs + prev * H : zeros;
        float* ht = hs + off * H;
        fill_rows(M, G, b_ih, gi);
        gemm("T", "N", &G, &M, &I, &one, w_ih, &I, x + off * I, &I, &one, gi, &G);
        fill_rows(M, G, b_hh, gh);
        if (t > 0) gemm("T", "N", &G, &M, &H, &one, w_hh, &H, hp, &H, &one, gh, &G);
        float* g = rzn + (keep ? off * G : 0);
        float* n = ghn + (keep ? off * H : 0);
        for (int i = 0; i < M; ++i)
            forward_row(H, gi + (size_t)i * G, gh + (size_t)i * G, hp + (size_t)i * H,
                        ht + (size_t)i * H, g + (size_t)i * G, n + (size_t)i * H);
        prev = off;
        off += (size_t)M;
    }
}

/* dhs [P, H] (dL/dhs) and the forward's x, hs, rzn, ghn -> dx [P, I] (overwritten) and the weight
 * and bias gradients, accumulated into dw_ih [3H, I], dw_hh [3H, H], db_ih, db_hh [3H] (zero them
 * first). work: [2, rows[0], 3H] + [rows[0], H] scratch; zeros: [rows[0], H] of zeros.
 * Returns 0, or -1 when it cannot allocate its bias accumulators (nothing is written then). */
int ccoma_gru_backward(sgemm_t gemm, int T, const int* rows, int I, int H, const float* dhs,
                       const float* x, const float* hs, const float* rzn, const float* ghn,
                       const float* w_ih, const float* w_hh, float* dx, float* dw_ih, float* dw_hh,
                       float* db_ih, float* db_hh, float* work, const float* zeros) {
    const int G = 3 * H;
    const float one = 1.0f, nil = 0.0f;
    const int M0 = rows[0];
    float* dgi = work;
    float* dgh = work + (size_t)M0 * G;
    float* dh = work + (size_t)2 * M0 * G;
    double* sums = calloc((size_t)2 * G, sizeof(double));
    if (!sums) return -1;
    /* d h carried from step t+1; a row's entry is zero until its sequence's last step (going
     * backwards, a sequence joins the running prefix there and nothing later read its state) */
    memset(dh, 0, sizeof(float) * (size_t)M0 * H);
    size_t off = 0;
    for (int t = 0; t < T && rows[t] > 0; ++t) off += (size_t)rows[t];
    for (int t = T - 1; t >= 0; --t) {
        const int M = rows[t];
        if (M <= 0) continue;
        off -= (size_t)M;
        const size_t prev = t > 0 ? off - (size_t)rows[t - 1] : 0;
        const float* hp = t > 0 ? hs + prev * H : zeros;
        const float* xt = x + off * I;
        const float* g = rzn + off * G;
        const float* n = ghn + off * H;
        const float* dout = dhs + off * H;
        for (int i = 0; i < M; ++i)
            backward_row(H, dout + (size_t)i * H, hp + (size_t)i * H, g + (size_t)i * G,
                         n + (size_t)i * H, dgi + (size_t)i * G, dgh + (size_t)i * G,
                         dh + (size_t)i * H);
        /* dx_t = dgi W_ih;  dW_ih += dgi^T x_t;  db_ih += sum_rows dgi */
        gemm("N", "N", &I, &M, &G, &one, w_ih, &I, dgi, &G, &nil, dx + off * I, &I);
        gemm("N", "T", &I, &G, &M, &one, xt, &I, dgi, &G, &one, dw_ih, &I);
        add_column_sums(M, G, dgi, sums);
        add_column_sums(M, G, dgh, sums + G);
        if (t > 0) {
            /* dW_hh += dgh^T h_{t-1};  d h_{t-1} = d * z (set above) + dgh W_hh */
            gemm("N", "T", &H, &G, &M, &one, hp, &H, dgh, &G, &one, dw_hh, &H);
            gemm("N", "N", &H, &M, &G, &one, w_hh, &H, dgh, &G, &one, dh, &H);
        }
    }
    for (int j = 0; j < G; ++j) {
        db_ih[j] += (float)sums[j];
        db_hh[j] += (float)sums[G + j];
    }
    free(sums);
    return 0;
}
