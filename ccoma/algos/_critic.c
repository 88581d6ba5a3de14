/* COMA's critic walk on CPU: a run of the critic's optimiser steps in one call.
 *
 * Built at first use by ccoma/algos/fused_critic.py (the system C compiler, -O3 for this CPU) and
 * called through ctypes, as _gru.c is. pymarl's COMA takes one critic step per time step of the
 * batch, walking the steps backwards, each on that step's rows (B episodes x N agents): the critic is
 * a small MLP (Linear, ReLU, Linear, ReLU, Linear) on a few dozen rows, so that each step's dozens of
 * tensor operators cost more in dispatch than in arithmetic. This file does a run of those steps
 * with nothing between them: per step
 *
 *   forward     a_{i+1} = relu(a_i W_i^T + b_i), q = a_{L-1} W_{L-1}^T + b_{L-1}         [R, A]
 *   loss        err_r = (q[r, u_r] - G_r) m_r,  loss = sum_r err_r^2 / count
 *   backward    d q[r, u_r] = 2 err_r / count (the mask again: a no-op, err is 0 where m is 0);
 *               dW_i = d_i^T a_i, db_i = sum_r d_i, d_{i-1} = (d_i W_i) * [a_i > 0]
 *   clipping    total = || (||g_k||)_k || over the parameter tensors; g *= min(1, clip / (total + 1e-6))
 *   RMSprop     v = alpha v + (1 - alpha) g^2;  p -= lr g / (sqrt(v) + eps)
 *
 * which are the losses, gradients, clipping and optimiser of the autograd step (torch's
 * clip_grad_norm_ and RMSprop without momentum, not centred) up to float rounding: the products go to
 * the BLAS sgemm_ that torch links (passed in), but the sums and norms are grouped differently from
 * ATen's. The output layer's backward uses that each row's gradient sits in one column (the taken
 * action's), so it is a gather and a scatter instead of two products.
 *
 * Layout: row-major float32. Parameters, running averages and gradients are flat buffers holding, per
 * layer i, W_i [dims[i+1], dims[i]] then b_i [dims[i+1]]. Step t reads x[t] [R, dims[0]], taken[t],
 * target[t], mask[t] [R] and count[t], and writes q[t] [R, A], loss[t] and norm[t] (the total norm
 * before clipping).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

typedef void (*sgemm_t)(const char*, const char*, const int*, const int*, const int*, const float*,
                        const float*, const int*, const float*, const int*, const float*, float*,
                        const int*);

/* out[R, O] = a[R, I] W[O, I]^T + b[O] */
static void linear(sgemm_t gemm, int R, int I, int O, const float* a, const float* W, const float* b,
                   float* out) {
    const float one = 1.0f;
    for (int r = 0; r < R; ++r) memcpy(out + (size_t)r * O, b, sizeof(float) * (size_t)O);
    gemm("T", "N", &O, &R, &I, &one, W, &I, a, &I, &one, out, &O);
}

static double sum_squares(size_t n, const float* restrict x) {
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += (double)x[i] * (double)x[i];
    return s;
}

/* Work: [sum_{i=1}^{L-1} R dims[i]] activations + 2 [R max_i dims[i]] gradient rows.
 * Returns 0, or -1 when an index is out of range (nothing after that step is written). */
int ccoma_critic_walk(sgemm_t gemm, int L, const int* dims, int R, float* p, float* v, float* g,
                      int S, const int* steps, const float* x, const long long* taken,
                      const float* target, const float* mask, const float* count, float clip,
                      float alpha, float eps, float lr, float* q, float* loss, float* norm,
                      float* work) {
    const float one = 1.0f, nil = 0.0f;
    const int A = dims[L];
    int widest = 0;
    size_t n_params = 0, act_size = 0;
    for (int i = 0; i < L; ++i) {
        n_params += (size_t)dims[i + 1] * dims[i] + dims[i + 1];
        if (i > 0) act_size += (size_t)R * dims[i];
        if (dims[i + 1] > widest) widest = dims[i + 1];
    }
    float* acts = work;                                   /* a_1 .. a_{L-1} */
    float* d_cur = work + act_size;
    float* d_prev = d_cur + (size_t)R * widest;
    for (int s = 0; s < S; ++s) {
        const int t = steps[s];
        const float* xt = x + (size_t)t * R * dims[0];
        const long long* ut = taken + (size_t)t * R;
        float* qt = q + (size_t)t * R * A;
        /* forward: where each layer's input lies */
        const float* in = xt;
        size_t w_off = 0, a_off = 0;
        for (int i = 0; i < L; ++i) {
            const int I = dims[i], O = dims[i + 1];
            float* out = i < L - 1 ? acts + a_off : qt;
            linear(gemm, R, I, O, in, p + w_off, p + w_off + (size_t)O * I, out);
            if (i < L - 1) {
                for (size_t k = 0; k < (size_t)R * O; ++k) out[k] = out[k] > 0.0f ? out[k] : 0.0f;
                a_off += (size_t)R * O;
            }
            in = out;
            w_off += (size_t)O * I + O;
        }
        /* loss and its gradient, one entry per row (the taken action's column) */
        const float inv = 1.0f / count[t];
        double sq = 0.0;
        for (int r = 0; r < R; ++r) {
            const long long u = ut[r];
            if (u < 0 || u >= A) return -1;
            const float e = (qt[(size_t)r * A + u] - target[(size_t)t * R + r]) * mask[(size_t)t * R + r];
            sq += (double)e * e;
            d_cur[r] = e * 2.0f * inv;
        }
        loss[t] = (float)(sq / count[t]);
        /* backward, last layer first: w_off is past the last layer's bias */
        size_t gw = w_off;
        for (int i = L - 1; i >= 0; --i) {
            const int I = dims[i], O = dims[i + 1];
            gw -= (size_t)O * I + O;
            float* gW = g + gw;
            float* gb = gW + (size_t)O * I;
            a_off -= i > 0 ? (size_t)R * I : 0;
            const float* a = i > 0 ? acts + a_off : xt;       /* this layer's input */
            const float* W = p + gw;
            if (i == L - 1) {
                /* d q is one entry per row (d_cur[r], at column u_r) */
                memset(gW, 0, sizeof(float) * ((size_t)O * I + O));
                for (int r = 0; r < R; ++r) {
                    const float dr = d_cur[r];
                    float* row = gW + (size_t)ut[r] * I;
                    const float* ar = a + (size_t)r * I;
                    for (int k = 0; k < I; ++k) row[k] += dr * ar[k];
                    gb[ut[r]] += dr;
                }
                if (i > 0)
                    for (int r = 0; r < R; ++r) {
                        const float dr = d_cur[r];
                        const float* wr = W + (size_t)ut[r] * I;
                        const float* ar = a + (size_t)r * I;
                        float* out = d_prev + (size_t)r * I;
                        for (int k = 0; k < I; ++k) out[k] = ar[k] > 0.0f ? dr * wr[k] : 0.0f;
                    }
            } else {
                /* dW [O, I] = d^T [O, R] a [R, I];  db = column sums of d;  d_prev = d W, gated */
                gemm("N", "T", &I, &O, &R, &one, a, &I, d_cur, &O, &nil, gW, &I);
                memset(gb, 0, sizeof(float) * (size_t)O);
                for (int r = 0; r < R; ++r)
                    for (int k = 0; k < O; ++k) gb[k] += d_cur[(size_t)r * O + k];
                if (i > 0) {
                    gemm("N", "N", &I, &R, &O, &one, W, &I, d_cur, &O, &nil, d_prev, &I);
                    for (size_t k = 0; k < (size_t)R * I; ++k) d_prev[k] = a[k] > 0.0f ? d_prev[k] : 0.0f;
                }
            }
            float* tmp = d_cur;
            d_cur = d_prev;
            d_prev = tmp;
        }
        /* clip_grad_norm_: the norm of the per-tensor norms */
        double total2 = 0.0;
        size_t off = 0;
        for (int i = 0; i < L; ++i) {
            const size_t nw = (size_t)dims[i + 1] * dims[i], nb = dims[i + 1];
            const double w2 = sqrt(sum_squares(nw, g + off)), b2 = sqrt(sum_squares(nb, g + off + nw));
            total2 += w2 * w2 + b2 * b2;
            off += nw + nb;
        }
        const float total = (float)sqrt(total2);
        float scale = clip / (total + 1e-6f);
        scale = scale < 1.0f ? scale : 1.0f;
        norm[t] = total;
        /* RMSprop on every parameter */
        const float keep = 1.0f - alpha;
        for (size_t k = 0; k < n_params; ++k) {
            const float gk = g[k] * scale;
            g[k] = gk;
            const float vk = v[k] * alpha + keep * gk * gk;
            v[k] = vk;
            p[k] -= lr * (gk / (sqrtf(vk) + eps));
        }
    }
    return 0;
}
